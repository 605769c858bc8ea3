"""A critic-free baseline: ``python -m uc_align.grpo --model M --data DIR --out CKPT``.

TRL's GRPOTrainer rewarded by PPO's reward object (``uc_align.ppo.reward.VerdictReward``: the benchmark's
reader, +1 / -1 / N/A), with the LoRA, data, checkpoint folder and log of the SFT and DPO commands; see
``uc_align.ppo.baselines``. ``--config file.yaml`` takes any of the flags.
"""

from __future__ import annotations

from uc_align.ppo.baselines import run


def main(argv: list[str] | None = None) -> int:
    return run("grpo", "GRPO", argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
