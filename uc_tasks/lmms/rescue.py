"""Answers that must not be lost: when the chosen scorer fails after the model has answered, the raw
answers are written as records (``uc_tasks.scoring.samples``) that ``python -m uc_tasks.rescore`` reads,
beside the run's ``--output_path`` (or in the working folder)."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def output_folder(argv: Sequence[str], default: Path | None = None) -> Path | None:
    """The ``--output_path`` of this lmms-eval command (lmms-eval does not hand it to tasks), else ``default``."""
    for i, arg in enumerate(argv):
        if arg.startswith("--output_path="):
            return Path(arg.split("=", 1)[1])
        if arg == "--output_path" and i + 1 < len(argv):
            return Path(argv[i + 1])
    return default


def save_unscored(records: Sequence[dict[str, Any]], argv: Sequence[str] | None = None) -> Path:
    """Write ``records`` (one JSON line each) to ``unscored_<task>_<time>.jsonl``; returns the file."""
    folder = output_folder(sys.argv if argv is None else argv, default=Path.cwd())
    folder.mkdir(parents=True, exist_ok=True)
    task = records[0]["task"] if records else "none"
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"unscored_unsafeconcepts_{task}_{stamp}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
