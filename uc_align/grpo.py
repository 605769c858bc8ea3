"""A critic-free baseline: ``python -m uc_align.grpo --model M --data DIR --out CKPT``.

TRL's GRPOTrainer rewarded by PPO's reward object (``uc_align.ppo.reward.VerdictReward``: the benchmark's
reader, +1 / -1 / N/A), with the LoRA, data, checkpoint folder and log of the SFT and DPO commands; see
``uc_align.ppo.baselines``. ``--config file.yaml`` takes any of the flags.
"""

from __future__ import annotations

import sys
from typing import Any

from uc_align.ppo.baselines import CriticFreeConfig, build_trainer
from uc_align.train import run_command
from uc_tasks.config import parse_config


def make_trainer(cfg: CriticFreeConfig, model: Any, processor: Any, dataset: Any, peft_config: Any,
                 args: dict[str, Any]) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    return build_trainer(GRPOTrainer, GRPOConfig, cfg, model, processor, dataset, peft_config, args)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(CriticFreeConfig, list(sys.argv[1:] if argv is None else argv), __doc__.split("\n\n")[0])
    return run_command("grpo", cfg, make_trainer)


if __name__ == "__main__":
    raise SystemExit(main())
