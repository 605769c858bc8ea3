"""PPO beside TRL's RLOO and GRPO: wall seconds and peak memory per rollout sample, same model, data, batch and
optimisation schedule, one run each, one after the other in this process's machine state.

Every command trains the short-format warm model of ``bench/rl_learning.py`` on the testbed's data for ``--steps``
batches of 32 sampled answers (at most 32 tokens), at two schedules:
- ``4x2``: the learning test's, 4 passes x 2 minibatches over each batch (PPO ``--ppo_epochs 4 --num_minibatches
  2``; GRPO / RLOO ``--num_iterations 4 --num_minibatches 2``), the setting at which all three learn;
- ``1x1``: the paper's single pass (TRL's default).
Seconds per sample are the logged step times summed (sampling, reference and old log-probs, updates; PPO's also
its value adapter and head) over the answers sampled; peak memory is the process's peak resident set.

    python bench/rl_speed.py            # 12 batches each
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]


def with_value(flags: list[str], name: str, value: str) -> list[str]:
    """``flags`` with ``name`` set to ``value`` (replaced where present)."""
    if name in flags:
        i = flags.index(name)
        return [*flags[:i + 1], value, *flags[i + 2:]]
    return [*flags, name, value]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12, help="batches of 32 sampled answers per run")
    p.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    import ppo_testbed
    from rl_learning import optimizer_steps_per_batch, seconds_per_sample
    from test_ppo_learning import CRITIC_FREE_FLAGS, FLAGS
    from testbed import build_testbed

    root = args.root or Path(tempfile.mkdtemp(prefix="rl_speed_"))
    bed = build_testbed(root)
    warm = ppo_testbed.warm_start_in_process(bed.base, root / "ppo_warm", bed.data / "train.jsonl")
    ppo = with_value(with_value(FLAGS, "--max_steps", str(args.steps)), "--eval_steps", "0")
    single = with_value(with_value(CRITIC_FREE_FLAGS, "--num_iterations", "1"), "--num_minibatches", "1")
    runs = {"ppo_4x2": ("ppo", ppo),
            "rloo_4x2": ("rloo", with_value(CRITIC_FREE_FLAGS, "--max_steps",
                                            str(args.steps * optimizer_steps_per_batch(CRITIC_FREE_FLAGS)))),
            "grpo_4x2": ("grpo", with_value(CRITIC_FREE_FLAGS, "--max_steps",
                                            str(args.steps * optimizer_steps_per_batch(CRITIC_FREE_FLAGS)))),
            "ppo_1x1": ("ppo", with_value(with_value(ppo, "--ppo_epochs", "1"), "--num_minibatches", "1")),
            "rloo_1x1": ("rloo", with_value(single, "--max_steps", str(args.steps)))}
    out: dict = {}
    for name, (command, flags) in runs.items():
        folder = root / name
        proc = bed.train(command, folder, *flags, model=warm)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        run = json.loads((folder / "uc_align.json").read_text())["train"]
        out[name] = {"seconds_per_sample": round(seconds_per_sample(command, folder, args.steps), 4),
                     "peak_memory_mb": round(run.get("peak_memory_mb") or run.get("peak_rss_mb") or 0.0, 1)}
        print(json.dumps({name: out[name]}), flush=True)
    for ppo_run, other in (("ppo_4x2", "rloo_4x2"), ("ppo_4x2", "grpo_4x2"), ("ppo_1x1", "rloo_1x1")):
        out[f"{ppo_run}_over_{other}"] = round(out[ppo_run]["seconds_per_sample"] / out[other]["seconds_per_sample"],
                                               2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
