"""Per-step metrics: one JSON line per PPO step in ``train_log.jsonl``, TensorBoard events when asked.

Every line holds the reward beside what shows whether it was earned honestly: verdict accuracy (on safe
and on unsafe items), N/A rate, answer length, the share of answers without EOS, the KL to the base, and two
of the step's answers with the reader's label (``examples``): a policy can drift to strings the reader still
reads (on the tiny testbed it answered safe images with a bare "safe." instead of "Yes, it is safe.").
A reward can be gamed (the length bonus reaches 4 against at most 1 for the verdict; a string the reader
misreads earns +1): read ``reward`` only together with ``accuracy``, ``answer_length`` and ``na_rate``, and with
the held-out ``eval/accuracy`` when an eval_file is given.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from uc_tasks.jsonl import json_lines

LOG_FILE = "train_log.jsonl"


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in json_lines(path.read_text(encoding="utf-8")) if line.strip()]


class StepLog:
    """Appends metrics to ``folder/train_log.jsonl``; on resume, first drops lines after ``resume_step``."""

    def __init__(self, folder: Path, tensorboard: bool, resume_step: int | None = None) -> None:
        self.path = folder / LOG_FILE
        folder.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        else:
            kept = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RuntimeError("tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=(resume_step or 0) + 1)

    def write(self, metrics: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")
        if self.writer is not None:
            for k, v in clean.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.writer.add_scalar(k, v, metrics["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
