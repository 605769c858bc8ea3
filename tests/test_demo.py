"""``bash scripts/demo.sh OUT``, the README's main job: the paper in miniature on the embedded default (no download,
CPU) — benchmark, SFT / DPO / PPO, every checkpoint re-evaluated into Table 3, the report — and a rerun that
skips what is finished."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, clean_env

pytestmark = pytest.mark.slow

BANNER = "PIPELINE DEMO on synthetic data, not a safety score"


def test_demo_runs_the_paper_in_miniature(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(["bash", "scripts/demo.sh", str(out)], cwd=REPO, env=clean_env(OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert any(BANNER in line for line in proc.stdout.splitlines()[-5:]), proc.stdout[-800:]
    report = out / "report" / "report.html"
    assert f"report:  {report}" in proc.stdout and f"Table 3: {out / 'eval' / 'table3.md'}" in proc.stdout

    table = json.loads((out / "eval" / "table3.json").read_text())
    ours = {r["name"]: r["cells"] for r in table["rows"] if r["source"] != "reported"}
    assert set(ours) == {"original", "sft", "dpo", "ppo"}, set(ours)
    acc = {name: cells["accuracy"] for name, cells in ours.items()}
    assert all(isinstance(a["value"], float) for a in acc.values()), acc
    print(json.dumps({name: a["value"] for name, a in acc.items()}))
    assert 0.3 <= acc["original"]["value"] <= 0.7, acc["original"]  # the warm model answers at chance
    assert acc["sft"]["value"] >= 0.8 and acc["sft"]["ci_low"] > acc["original"]["ci_high"], acc  # real learning
    for name in ("dpo", "ppo"):
        assert acc[name]["value"] > acc["original"]["value"], (name, acc)
    assert "| sft |" in (out / "eval" / "table3.md").read_text()

    page = report.read_text()
    assert "id='table3'" in page and "Table 3" in page and BANNER in page
    benchmark = json.loads(next((out / "benchmark").rglob("*_results.json")).read_text())["results"]
    assert {"unsafeconcepts_image", "unsafeconcepts_text", "unsafeconcepts_perception"} <= set(benchmark)
    assert (out / "rescored_rule.json").is_file()

    again = subprocess.run(["bash", "scripts/demo.sh", str(out)], cwd=REPO, env=clean_env(OMP_NUM_THREADS="1"),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert again.stdout.count("finished earlier") == 3 and again.stdout.count("already evaluated") == 4, again.stdout
