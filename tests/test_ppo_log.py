"""The per-step log: JSON lines (NaN written as null), truncated to the checkpoint's step on resume; TensorBoard
asked for but not installed stops with the fix."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ppo_testbed  # noqa: F401  (puts the checkout on sys.path for uc_align)
import pytest

from uc_align.ppo.log import StepLog, read_log


def test_lines_nan_and_resume(tmp_path: Path) -> None:
    log = StepLog(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        log.write({"step": step, "reward": 0.5 * step, "explained_variance": float("nan")})
    assert [r["reward"] for r in read_log(tmp_path / "train_log.jsonl")] == [0.5, 1.0, 1.5]
    assert read_log(tmp_path / "train_log.jsonl")[0]["explained_variance"] is None
    StepLog(tmp_path, tensorboard=False, resume_step=2).write({"step": 3, "reward": 9.0})
    assert [(r["step"], r["reward"]) for r in read_log(tmp_path / "train_log.jsonl")] == [(1, 0.5), (2, 1.0), (3, 9.0)]
    StepLog(tmp_path, tensorboard=False)  # a fresh run starts a fresh log
    assert read_log(tmp_path / "train_log.jsonl") == []


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed here")
def test_tensorboard_without_the_package_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="pip install tensorboard"):
        StepLog(tmp_path, tensorboard=True)
