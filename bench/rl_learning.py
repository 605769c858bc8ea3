"""Rollouts to 90% held-out accuracy and training time per rollout sample for PPO, GRPO and RLOO, side by side.

On the learning testbed (``tests/testbed.py`` data, the short-format warm start of ``tests/test_ppo_learning.py``),
each method runs through its command (the test's flags: ``FLAGS`` for PPO, ``CRITIC_FREE_FLAGS`` for GRPO and
RLOO, the same schedule of 4 passes x 2 minibatches over each batch of 32 sampled answers) with a checkpoint
every ``--every`` batches; every checkpoint is evaluated on ``unsafeconcepts_finetune_test`` through the real
lmms-eval CLI (greedy, and sampled at temperature 1). Prints one JSON line per checkpoint, then per method: the
first rollout count at which greedy and sampled accuracy reach ``--target``, and the training seconds per rollout
sample (the logged step times summed, over the answers sampled; PPO's include its value head, the others have
none).

    python bench/rl_learning.py                      # ppo, grpo, rloo; 48 batches of 32 answers each
    python bench/rl_learning.py --methods rloo --steps 32 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
BATCH = 32


def optimizer_steps_per_batch(flags: list[str]) -> int:
    """TRL counts optimizer steps: num_iterations x num_minibatches per generated batch."""
    value = {k: int(flags[flags.index(k) + 1]) if k in flags else 1 for k in ("--num_iterations", "--num_minibatches")}
    return value["--num_iterations"] * value["--num_minibatches"]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["ppo", "grpo", "rloo"], choices=["ppo", "grpo", "rloo"])
    p.add_argument("--steps", type=int, default=48, help="batches of 32 sampled answers per run")
    p.add_argument("--every", type=int, default=8, help="checkpoint (and evaluate) every N batches")
    p.add_argument("--seed", type=int, default=0, help="seed of every run")
    p.add_argument("--target", type=float, default=0.9, help="held-out accuracy to reach")
    p.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one)")
    return p


def checkpoints(method: str, out: Path, per_batch: int = 1) -> list[tuple[int, Path]]:
    """(batches trained, adapter folder) of every checkpoint a run wrote."""
    if method == "ppo":
        return sorted((int(p.name.split("-")[1]), p / "policy") for p in out.glob("checkpoint-*") if p.is_dir())
    return sorted((int(p.name.split("-")[1]) // per_batch, p) for p in (out / "checkpoints").glob("checkpoint-*"))


def seconds_per_sample(method: str, out: Path, batches: int) -> float:
    """Training seconds (every logged step, sampling included) per sampled answer."""
    if method == "ppo":
        rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
        return sum(r["step_s"] for r in rows) / (batches * BATCH)
    rows = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines() if x.strip()]
    return sum(r["step_time_s"] for r in rows if "step_time_s" in r and "train_runtime" not in r) / (batches * BATCH)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    import ppo_testbed
    from test_ppo_learning import CRITIC_FREE_FLAGS, FLAGS
    from testbed import accuracy, build_testbed

    root = args.root or Path(tempfile.mkdtemp(prefix="rl_learning_"))
    bed = build_testbed(root)
    warm = ppo_testbed.warm_start_in_process(bed.base, root / "ppo_warm", bed.data / "train.jsonl")
    per_batch = optimizer_steps_per_batch(CRITIC_FREE_FLAGS)
    seed = ["--seed", str(args.seed)]
    summary = {}
    for method in args.methods:
        out = root / method
        if method == "ppo":
            flags = [*FLAGS, "--max_steps", str(args.steps), "--save_steps", str(args.every), "--eval_steps", "0",
                     *seed]
        else:
            flags = [*CRITIC_FREE_FLAGS, "--max_steps", str(args.steps * per_batch), "--save_steps",
                     str(args.every * per_batch), "--save_total_limit", "1000", *seed]
        proc = bed.train(method, out, *flags, model=warm)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        reached: dict[str, int | None] = {"greedy": None, "sampled": None}
        for step, adapter in checkpoints(method, out, per_batch):
            row: dict = {"method": method, "step": step, "rollouts": step * BATCH}
            for mode in ("greedy", "sampled"):
                row[mode] = accuracy(bed.evaluate(root / f"eval_{method}_{step}_{mode}", adapter=adapter, model=warm,
                                                  sampled=mode == "sampled"))
                if reached[mode] is None and row[mode]["accuracy"] >= args.target:
                    reached[mode] = step * BATCH
            print(json.dumps(row), flush=True)
        summary[method] = {"rollouts_to_target": reached,
                           "seconds_per_sample": round(seconds_per_sample(method, out, args.steps), 4)}
    if "ppo" in summary and "rloo" in summary:
        summary["ppo_over_rloo_time_per_sample"] = round(summary["ppo"]["seconds_per_sample"]
                                                         / summary["rloo"]["seconds_per_sample"], 2)
    print(json.dumps({"target": args.target, "seed": args.seed, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
