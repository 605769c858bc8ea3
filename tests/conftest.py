"""Shared fixtures: a small synthetic replica and a runner for the real ``lmms-eval`` command."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from uc_tasks.data.synth import write_replica
from uc_tasks.jsonl import json_lines

pytest_plugins = ("testbed",)  # the learning testbed's session fixtures (tests/testbed.py)

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = Path(os.environ.get("UNSAFECONCEPTS_REFERENCE", REPO.parent / "shared" / "reference"))
"""The authors' reference files (TrustAIRLab/SaferVLM), beside the checkout in CI; a clone alone skips
the few tests that read them."""


def reference_file(relative: str) -> Path:
    """A file of the authors' reference data, or a skip that names it and how to get it."""
    path = SHARED_REFERENCE / relative
    if not path.is_file():
        pytest.skip(f"needs the authors' {relative} (github.com/TrustAIRLab/SaferVLM, MIT) in {SHARED_REFERENCE}; "
                    "put it there or point UNSAFECONCEPTS_REFERENCE at a folder holding it")
    return path
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class Run:
    """One finished lmms-eval run: its results JSON and per-task samples."""

    proc: subprocess.CompletedProcess
    results: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]]

    def metric(self, task: str, name: str) -> Any:
        return self.results["results"][task][f"{name},none"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNSAFECONCEPTS_")}
    env.update(OFFLINE)
    env.update(extra)
    return env


def lmms_eval(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lmms-eval"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def run_tasks(tasks: str, model: str, model_args: str, out: Path, env: dict[str, str],
              extra: list[str] | None = None) -> Run:
    """Run the real CLI and read what it wrote. The CLI exits 0 on errors, so the files decide."""
    args = ["--model", model, "--model_args", model_args, "--tasks", tasks,
            "--output_path", str(out), "--log_samples", *(extra or [])]
    proc = lmms_eval(args, env, out.parent)
    found = sorted(glob.glob(str(out / "**" / "*_results.json"), recursive=True))
    assert proc.returncode == 0 and found, (
        f"lmms-eval failed (rc={proc.returncode}, results files {found}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    results = json.loads(Path(found[-1]).read_text())
    samples: dict[str, list[dict[str, Any]]] = {}
    for f in glob.glob(str(out / "**" / "*_samples_*.jsonl"), recursive=True):
        task = f.rsplit("_samples_", 1)[1][: -len(".jsonl")]
        samples[task] = [json.loads(line) for line in json_lines(Path(f).read_text(encoding="utf-8")) if line.strip()]
    return Run(proc, results, samples)


def write_replay_log(folder: Path, task: str, answers: list[str]) -> None:
    """A log that lmms-eval's ``from_log`` model replays: answer i for doc i of ``task``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = {"args": {"model": "replay", "model_args": "", "limit": None}, "time": "1127_0000",
           "model_configs": {"task": task}, "logs": [{"doc_id": i, "resps": [[a]]} for i, a in enumerate(answers)]}
    (folder / f"{task}.json").write_text(json.dumps(log))


@pytest.fixture(scope="session")
def small_replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """75 concepts x at most 2 images (147 rows), the authors' folder layout."""
    out = tmp_path_factory.mktemp("replica2")
    write_replica(out, per_concept=2, size=32, parquet=True)
    return out


@pytest.fixture(scope="session")
def replica_rows(small_replica: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (small_replica / "metadata.jsonl").read_text().splitlines()]
