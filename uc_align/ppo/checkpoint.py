"""Checkpoints: ``output_dir/checkpoint-{step}/`` holds everything a run needs to go on exactly.

- ``policy/``: the policy LoRA adapter (PEFT format; ``uc_hf_vlm``'s ``adapter=`` loads it for evaluation);
- ``value/``, ``value_head.pt``: the value adapter and head;
- ``processor/``: the processor the rollouts used;
- ``config.yaml``: the resolved config that made it;  ``train_log.jsonl``: the log up to this step;
- ``trainer_state.pt``: step, optimizer, scheduler and RNG states.

When the run ends, the last checkpoint's policy adapter and processor are also copied to ``output_dir`` itself,
beside ``uc_align.json`` (status, config, data, versions, final metrics): the checkpoint folder of every
``uc_align`` command, which ``--model_args pretrained=<base>,adapter=<output_dir>`` and ``uc_align.evaluate``
read the same way.

A checkpoint is written to ``checkpoint-{step}.tmp`` and renamed when complete, so a run killed while
saving leaves the previous checkpoint as the newest. ``--resume`` loads the newest one; a run with the same
config and seed then reaches the same final metrics as one never interrupted.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from uc_align.ppo.config import PPOConfig
from uc_align.ppo.log import LOG_FILE

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "config.yaml"
_NAME = re.compile(r"checkpoint-(\d+)")
NOT_COMPARED = {"resume", "progress", "save_steps", "eval_steps", "tensorboard"}
"""Fields a resumed run may change: they do not alter the steps already taken."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(output_dir: Path, step: int, models: Any, processor: Any, config: PPOConfig, state: dict[str, Any]) -> Path:
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f"checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    models.save(tmp)
    processor.save_pretrained(tmp / "processor")
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if (output_dir / LOG_FILE).is_file():
        shutil.copy(output_dir / LOG_FILE, tmp / LOG_FILE)
    torch.save({"step": step, **state, "rng": rng_state()}, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def export(output_dir: Path, checkpoint: Path) -> None:
    """Copy the policy adapter and the processor of ``checkpoint`` to ``output_dir`` (the run's adapter)."""
    for folder in (checkpoint / "policy", checkpoint / "processor"):
        for f in folder.iterdir():
            if f.is_file():
                shutil.copy(f, output_dir / f.name)


def newest(output_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step in ``output_dir``, or None."""
    found = [(int(m.group(1)), p) for p in output_dir.glob("checkpoint-*")
             if (m := _NAME.fullmatch(p.name)) and (p / STATE_FILE).is_file()]
    return max(found)[1] if found else None


def check_same_config(checkpoint: Path, config: PPOConfig) -> None:
    """A resumed run must be the run that was interrupted: every field that shapes training must match."""
    saved = yaml.safe_load((checkpoint / CONFIG_FILE).read_text())
    now = config.to_dict()
    differ = sorted(k for k in now if k not in NOT_COMPARED and saved.get(k) != now[k])
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in differ)
        raise ValueError(f"--resume {checkpoint}: the config differs from the checkpoint's ({shown}); resume with "
                         f"the same config, or start a new output_dir")


def load_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, weights_only=False)
