"""PPO beside TRL's RLOO: wall seconds and peak memory per rollout sample, same model, data and batch, one run.

Both commands train the short-format warm model of ``bench/rl_learning.py`` on the testbed's data for ``--steps``
steps of 32 sampled answers (at most 32 tokens), one after the other in this process's machine state. PPO runs
twice: with the paper's single pass over each rollout batch (``--ppo_epochs 1 --num_minibatches 1``), which is
RLOO's one pass (``num_iterations 1``), and with the learning test's 4 epochs x 2 minibatches. Seconds per sample
are the median logged step time / 32 (PPO includes its value head and reference forward; RLOO has neither); peak
memory is the process's peak resident set (``uc_align.json``).

    python bench/rl_speed.py            # 12 steps each
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12, help="training steps of 32 sampled answers per run")
    p.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    import ppo_testbed
    from rl_learning import seconds_per_sample
    from test_ppo_learning import CRITIC_FREE_FLAGS, FLAGS
    from testbed import build_testbed

    from uc_align.ppo.items import load_items

    root = args.root or Path(tempfile.mkdtemp(prefix="rl_speed_"))
    bed = build_testbed(root)
    warm = ppo_testbed.warm_start(bed.base, root / "ppo_warm", pool=load_items(bed.data / "train.jsonl", seed=0))
    steps = ["--max_steps", str(args.steps)]
    runs = {"ppo_single_pass": ("ppo", [*FLAGS, *steps, "--ppo_epochs", "1", "--num_minibatches", "1",
                                        "--eval_steps", "0"]),
            "ppo_4x2": ("ppo", [*FLAGS, *steps, "--eval_steps", "0"]),
            "rloo": ("rloo", [*CRITIC_FREE_FLAGS, *steps])}
    out: dict = {}
    for name, (command, flags) in runs.items():
        folder = root / name
        proc = bed.train(command, folder, *flags, model=warm)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        run = json.loads((folder / "uc_align.json").read_text())["train"]
        out[name] = {"seconds_per_sample": round(seconds_per_sample(command, folder), 4),
                     "peak_memory_mb": round(run.get("peak_memory_mb") or run.get("peak_rss_mb") or 0.0, 1)}
        print(json.dumps({name: out[name]}), flush=True)
    for name in ("ppo_single_pass", "ppo_4x2"):
        out[f"{name}_over_rloo"] = round(out[name]["seconds_per_sample"] / out["rloo"]["seconds_per_sample"], 2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
