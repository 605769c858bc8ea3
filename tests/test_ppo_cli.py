"""``python -m uc_align.ppo`` as a user runs it: checkpoints, and --resume after a SIGKILL mid-run reaching the
same log and the same adapter as a run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ppo_testbed
import pytest
from conftest import REPO, clean_env

pytestmark = pytest.mark.slow

TIMING = {"step_s", "rollout_s", "peak_memory_mb"}  # of the process, not of the run
FLAGS = ["--rollout_batch_size", "8", "--max_steps", "6", "--save_steps", "2", "--max_new_tokens", "8",
         "--lora_r", "4", "--lora_alpha", "8", "--modules_to_save", "lm_head", "--learning_rate", "1e-3",
         "--ppo_epochs", "2", "--num_minibatches", "2", "--progress", "false", "--seed", "3"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from tiny_qwen2vl import build_tiny_qwen2vl

    from uc_align.ppo.items import write_items

    root = tmp_path_factory.mktemp("ppo_cli")
    model = build_tiny_qwen2vl(root / "model")
    train = write_items(root / "train.jsonl", ppo_testbed.make_items(24, seed=1))
    held = write_items(root / "test.jsonl", ppo_testbed.make_items(8, seed=2))
    return model, train, held


def command(setup: tuple[Path, Path, Path], out: Path, *extra: str) -> list[str]:
    model, train, held = setup
    return [sys.executable, "-m", "uc_align.ppo", "--model", str(model), "--train_file", str(train),
            "--eval_file", str(held), "--out", str(out), *FLAGS, *extra]


def env() -> dict[str, str]:
    return clean_env(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")


def log_without_timing(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_resume_after_sigkill_reaches_the_same_final_metrics(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    proc = subprocess.run(command(setup, whole), env=env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads(proc.stdout.strip().splitlines()[-1])
    assert final["step"] == 6 and "eval/accuracy" in final
    assert sorted(p.name for p in whole.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]

    killed = tmp_path / "killed"
    child = subprocess.Popen(command(setup, killed), env=env(), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (killed / "checkpoint-2").is_dir() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (killed / "checkpoint-6").exists(), "the run ended before it could be killed"
    resumed = subprocess.run(command(setup, killed, "--resume", "true"), env=env(), cwd=REPO, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert log_without_timing(killed) == log_without_timing(whole)
    for name in ("policy/adapter_model.safetensors", "value/adapter_model.safetensors"):
        assert (killed / "checkpoint-6" / name).read_bytes() == (whole / "checkpoint-6" / name).read_bytes(), name
    # the run's folder is a uc_align checkpoint folder: the final policy adapter at its root, and uc_align.json
    assert (killed / "adapter_model.safetensors").read_bytes() == (whole / "adapter_model.safetensors").read_bytes()
    assert (whole / "adapter_model.safetensors").read_bytes() == (
        whole / "checkpoint-6" / "policy" / "adapter_model.safetensors").read_bytes()
    for out, resumed_from in ((whole, None), (killed, 2)):
        run = json.loads((out / "uc_align.json").read_text())
        assert run["command"] == "ppo" and run["status"] == "finished" and run["resumed_from"] == resumed_from
        assert run["train"]["global_step"] == 6 and run["config"]["seed"] == 3 and "torch" in run["packages"]
        assert (out / "adapter_config.json").is_file() and (out / "tokenizer.json").is_file()


def test_resume_with_another_config_stops_with_the_difference(setup: tuple[Path, Path, Path],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = subprocess.run(command(setup, out, "--max_steps", "2"), env=env(), cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run(command(setup, out, "--max_steps", "2", "--resume", "true", "--kl_coef", "0.5"),
                           env=env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0
    assert "kl_coef: 0.1 -> 0.5" in again.stderr and "resume with the same config" in again.stderr
    nothing = subprocess.run(command(setup, tmp_path / "empty", "--resume", "true"), env=env(), cwd=REPO,
                             capture_output=True, text=True, timeout=600)
    assert nothing.returncode != 0 and "no checkpoint in" in nothing.stderr
