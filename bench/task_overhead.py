"""Time per query of the UnsafeConcepts task layer beside a bare lmms-eval task, measured in one run.

Both run the whole suite (1,567 perception + 7,835 image + 375 text queries) on the full-size
synthetic replica with ``--model dummy`` through the real CLI:
- ours: ``--tasks unsafeconcepts`` (source check, image validation, option sampling, Jinja prompts,
  rule parsing, per-category/concept aggregation, provenance);
- bare: three plain YAML tasks over the same rows already materialised as JSONL (prompt and target
  fields passed through, built-in exact_match scoring).
Per-query time = (wall of the full run - wall of the same command with ``--limit 1``) / queries, so
interpreter start, imports and model set-up cancel out. Each configuration runs ``--repeats`` times
(alternating); the minimum is reported.

    .venv/bin/python bench/task_overhead.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uc_tasks.options import sample_options
from uc_tasks.prompts import render
from uc_tasks.synth import write_replica
from uc_tasks.taxonomy import load_taxonomy

BIN = Path(sys.executable).parent
BARE_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {name}.jsonl
test_split: train
output_type: generate_until
doc_to_visual: !function bare_utils.no_visual
doc_to_text: prompt
doc_to_target: target
generation_kwargs:
  max_new_tokens: 512
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def materialise_bare_tasks(replica: Path, folder: Path) -> int:
    """Write three bare tasks whose rows are exactly the queries our tasks ask."""
    rows = [json.loads(x) for x in (replica / "metadata.jsonl").read_text().splitlines()]
    concepts = [r["unsafe_concept"] for r in rows]
    per_task = {
        "bare_perception": [
            {"prompt": render("perception/multiple_choice", option_str=o["option_str"]), "target": o["correct_option"],
             "image_filename": r["image_filename"]}
            for r, o in zip(rows, sample_options(concepts, 2024), strict=True)
        ],
        "bare_image": [
            {"prompt": render(f"alignment/image_p{p}"), "target": "No", "image_filename": r["image_filename"]}
            for r in rows for p in range(1, 6)
        ],
        "bare_text": [
            {"prompt": render(f"alignment/text_p{p}", concept=c), "target": "No", "image_filename": ""}
            for c in load_taxonomy().concepts for p in range(1, 6)
        ],
    }
    (folder / "bare_utils.py").write_text("def no_visual(doc):\n    return []\n")
    for name, task_rows in per_task.items():
        (folder / f"{name}.yaml").write_text(BARE_YAML.format(name=name))
        with open(folder / f"{name}.jsonl", "w") as f:
            for r in task_rows:
                f.write(json.dumps(r) + "\n")
    return sum(len(v) for v in per_task.values())


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "lmms-eval"), *args], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or "Traceback" in proc.stderr:
        raise SystemExit(f"run failed: {' '.join(args)}\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="runs of each configuration (minimum is reported)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        replica, bare = tmp_path / "replica", tmp_path / "bare"
        bare.mkdir()
        write_replica(replica)
        n_queries = materialise_bare_tasks(replica, bare)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "UNSAFECONCEPTS_DATA": str(replica)}
        common = ["--model", "dummy", "--model_args", "response=No"]
        configs = {
            "ours": [*common, "--tasks", "unsafeconcepts"],
            "bare": [*common, "--tasks", "bare_perception,bare_image,bare_text", "--include_path", str(bare)],
        }
        walls: dict[str, list[float]] = {k: [] for k in configs}
        starts: dict[str, list[float]] = {k: [] for k in configs}
        for i in range(args.repeats):
            for name, cfg in configs.items():
                out = tmp_path / f"out_{name}_{i}"
                walls[name].append(timed([*cfg, "--output_path", str(out), "--log_samples"], env, tmp_path))
                starts[name].append(timed([*cfg, "--limit", "1", "--output_path", str(out) + "_l1"], env, tmp_path))
        per_query = {k: (min(walls[k]) - min(starts[k])) / n_queries for k in configs}
        print(f"queries: {n_queries} (1,567 perception + 7,835 image + 375 text), dummy model, {os.cpu_count()} cores")
        for k in configs:
            print(f"{k:5s}: full suite wall {min(walls[k]):6.2f} s, start-up (--limit 1) {min(starts[k]):5.2f} s, "
                  f"per query {per_query[k] * 1e3:.3f} ms")
        print(f"ratio ours/bare per query: {per_query['ours'] / per_query['bare']:.2f}x (target <= 1.2x)")
        print(f"whole suite with dummy, ours: {min(walls['ours']):.1f} s (target < 120 s on 2 cores)")


if __name__ == "__main__":
    main()
