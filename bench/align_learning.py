"""Steps to 90% held-out accuracy for SFT and DPO on the learning testbed, through the real lmms-eval CLI.

Builds the testbed of ``tests/testbed.py`` (synthetic fine-tuning data, a tiny Qwen2-VL warm-started on the answer
format with coin-flip verdicts), trains each method with the learning test's settings and a checkpoint every
``--every`` steps, and evaluates every checkpoint on ``unsafeconcepts_finetune_test`` (greedy and sampled at
temperature 1) with ``--model uc_hf_vlm --model_args pretrained=<warm>,adapter=<checkpoint>``. Prints one JSON line
per checkpoint, then per method the first step where greedy and sampled accuracy reach ``--target``, the training
wall time, the median wall and CPU time per step and the peak memory (``training_log.jsonl``).

    python bench/align_learning.py                       # sft, rpo (DPO + NLL) and dpo (pure), every 13 steps
    python bench/align_learning.py --methods sft --every 26
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["sft", "rpo", "dpo"], choices=["sft", "rpo", "dpo"])
    p.add_argument("--every", type=int, default=13, help="checkpoint (and evaluate) every N steps")
    p.add_argument("--target", type=float, default=0.9, help="held-out accuracy to reach")
    p.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from test_align_learning import PURE_DPO_FLAGS, RPO_FLAGS
    from testbed import SFT_FLAGS, accuracy, build_testbed

    root = args.root or Path(tempfile.mkdtemp(prefix="align_learning_"))
    bed = build_testbed(root)
    flags = {"sft": ("sft", SFT_FLAGS), "rpo": ("dpo", RPO_FLAGS), "dpo": ("dpo", PURE_DPO_FLAGS)}
    summary = {}
    for method in args.methods:
        command, base = flags[method]
        out = root / method
        proc = bed.train(command, out, *base, "--save_steps", str(args.every), "--save_total_limit", "1000")
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        reached: dict[str, int | None] = {"greedy": None, "sampled": None}
        steps = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
        for step in steps:
            ckpt = out / "checkpoints" / f"checkpoint-{step}"
            row = {"method": method, "step": step}
            for mode in ("greedy", "sampled"):
                row[mode] = accuracy(bed.evaluate(root / f"eval_{method}_{step}_{mode}", adapter=ckpt,
                                                  sampled=mode == "sampled"))
                if reached[mode] is None and row[mode]["accuracy"] >= args.target:
                    reached[mode] = step
            print(json.dumps(row), flush=True)
        log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
        per_step = [e for e in log if "loss" in e]
        run = json.loads((out / "uc_align.json").read_text())["train"]
        summary[method] = {"steps_to_target": reached, "steps": run["global_step"], "train_wall_s": run["wall_s"],
                           "median_step_wall_s": statistics.median(e["step_time_s"] for e in per_step),
                           "median_step_cpu_s": statistics.median(e["step_cpu_s"] for e in per_step),
                           "peak_rss_mb": run["peak_rss_mb"]}
    print(json.dumps({"target": args.target, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
