"""Time per query of the UnsafeConcepts task layer beside a bare lmms-eval task, measured in one run.

Both run the whole suite (1,567 perception + 7,835 image + 375 text queries) on the full-size
synthetic replica with lmms-eval's ``dummy`` model:
- ours: the ``unsafeconcepts`` group (source check, image validation, option sampling, Jinja prompts,
  rule parsing, per-category/concept aggregation, provenance);
- bare: three plain YAML tasks over the same rows already materialised as JSONL (prompt and target
  fields passed through, built-in exact_match scoring).
Each configuration is timed as one ``lmms_eval.evaluator.simple_evaluate`` call (task building,
requests, answers, per-sample processing with logged samples, aggregation) in this one process, so
imports and lmms-eval's task index (~20 s of YAML parsing) are paid once, outside the timings. Our
in-process caches are cleared before every run, so each run loads and validates the data again.
The configurations alternate ``--repeats`` times; the minimum is reported. A final check runs the
real CLI once for the whole suite's wall time.

    .venv/bin/python bench/task_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uc_tasks.data.options import sample_options
from uc_tasks.data.synth import write_replica
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.prompts import render

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


def _clear_our_caches() -> None:
    from uc_tasks.data import context
    from uc_tasks.lmms import docs
    from uc_tasks.scoring import registry, samples
    from uc_tasks.scoring.rules import scorer as rule

    for fn in (docs._resolved, docs._rows_for, docs._position_of, docs._render_cached, registry._chosen,
               samples._options, context.load_questions, rule._alignment, rule._perception):
        fn.cache_clear()
    docs.RUN_STATE.clear()


def time_evaluate(tasks: list[str], task_manager, replica: Path) -> float:
    from lmms_eval.evaluator import simple_evaluate

    _clear_our_caches()
    start = time.perf_counter()
    out = simple_evaluate(model="dummy", model_args="response=No", tasks=tasks, task_manager=task_manager,
                          log_samples=True, verbosity="ERROR")
    wall = time.perf_counter() - start
    if not out or not all(t in out["results"] for t in tasks):
        raise SystemExit(f"run of {tasks} produced no results")
    return wall


def cli_wall(replica: Path, out: Path) -> float:
    env = {**os.environ, "UNSAFECONCEPTS_DATA": str(replica)}
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "lmms-eval"), "--model", "dummy", "--model_args", "response=No", "--tasks",
                           "unsafeconcepts", "--output_path", str(out), "--log_samples"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not list(out.rglob("*_results.json")):
        raise SystemExit(f"CLI run failed:\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration (minimum is reported)")
    args = p.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        replica, bare = tmp_path / "replica", tmp_path / "bare"
        bare.mkdir()
        write_replica(replica)
        n_queries = materialise_bare_tasks(replica, bare)
        os.environ["UNSAFECONCEPTS_DATA"] = str(replica)
        sys.path.insert(0, str(bare))  # bare_utils.py
        import lmms_eval.evaluator  # noqa: F401  (loads the model entry points, which add our tasks)
        from lmms_eval.tasks import TaskManager

        configs = {
            "ours": (["unsafeconcepts"], TaskManager("ERROR")),
            "bare": (["bare_perception", "bare_image", "bare_text"], TaskManager("ERROR", include_path=str(bare))),
        }
        walls: dict[str, list[float]] = {k: [] for k in configs}
        for _ in range(args.repeats):
            for name, (tasks, tm) in configs.items():
                walls[name].append(time_evaluate(tasks, tm, replica))
        best = {k: min(v) for k, v in walls.items()}
        print(f"queries: {n_queries} (1,567 perception + 7,835 image + 375 text), dummy model, {os.cpu_count()} cores")
        for k in configs:
            runs = ", ".join(f"{w:.2f}" for w in walls[k])
            print(f"{k:5s}: evaluate {best[k]:6.2f} s (runs: {runs}), per query {best[k] / n_queries * 1e3:.3f} ms")
        med = {k: statistics.median(v) for k, v in walls.items()}
        print(f"ratio ours/bare per query: {best['ours'] / best['bare']:.2f}x of the fastest runs, "
              f"{med['ours'] / med['bare']:.2f}x of the medians (target <= 1.2x)")
        wall = cli_wall(replica, tmp_path / "cli")
        print(f"whole suite through the CLI with dummy, imports included: {wall:.1f} s (target < 120 s on 2 cores)")


if __name__ == "__main__":
    main()
