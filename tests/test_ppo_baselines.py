"""The critic-free baselines: ``python -m uc_align.grpo`` / ``rloo`` run TRL's trainers with PPO's reward object
on ``uc_align.data``'s folder and write the SFT/DPO checkpoint folder (smoke runs on a tiny random model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ppo_testbed  # noqa: F401  (puts the checkout on sys.path for uc_align)
import pytest
from conftest import REPO, clean_env

from uc_align.ppo.baselines import CriticFreeConfig


def test_the_group_must_fit_the_batch() -> None:
    with pytest.raises(ValueError, match="batch_size=32 is not a multiple of num_generations=5"):
        CriticFreeConfig(model="m", data="d", out="o", num_generations=5)
    with pytest.raises(ValueError, match="num_generations=1: a group baseline needs at least 2"):
        CriticFreeConfig(model="m", data="d", out="o", num_generations=1, batch_size=4)
    with pytest.raises(ValueError, match="reward='rules'"):
        CriticFreeConfig(model="m", data="d", out="o", reward="rules")


def test_the_grpo_options_reach_trl_and_bad_ones_stop_with_one_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import trl

    from uc_align.ppo.baselines import trl_config
    from uc_align.rloo import main as rloo_main
    from uc_align.train import TrainError, trl_arguments

    base = {"model": "m", "data": "d", "out": str(tmp_path), "batch_size": 8, "num_generations": 4,
            "report_to": "none"}
    args = trl_arguments(CriticFreeConfig(**base), tmp_path, 1)
    cfg = CriticFreeConfig(**base, scale_rewards="none", loss_type="dr_grpo", mask_truncated_completions=True,
                           beta=0.0)
    grpo = trl_config(cfg, args, trl.GRPOConfig)
    assert (grpo.scale_rewards, grpo.loss_type, grpo.mask_truncated_completions, grpo.beta) == \
        ("none", "dr_grpo", True, 0.0)
    default = trl_config(CriticFreeConfig(**base), args, trl.GRPOConfig)  # unset: TRL's defaults
    assert (default.scale_rewards, default.loss_type, default.mask_truncated_completions) == ("group", "dapo", False)
    assert trl_config(CriticFreeConfig(**base), args, trl.RLOOConfig).num_generations == 4
    with pytest.raises(ValueError, match=r"^scale_rewards='std': must be one of group, batch, none; pass e\.g\."):
        CriticFreeConfig(**base, scale_rewards="std")
    with pytest.raises(ValueError, match=r"^loss_type='luspo': must be one of dapo, "):
        CriticFreeConfig(**base, loss_type="luspo")
    # PPO's schedule: 4 passes x 2 minibatches of each generated batch of 8 answers, 2 accumulation steps each
    scheduled = {**base, "num_iterations": 4, "num_minibatches": 2, "gradient_accumulation_steps": 2}
    for config_class in (trl.GRPOConfig, trl.RLOOConfig):
        c = trl_config(CriticFreeConfig(**scheduled), trl_arguments(CriticFreeConfig(**scheduled), tmp_path, 1),
                       config_class)
        assert (c.per_device_train_batch_size, c.gradient_accumulation_steps, c.steps_per_generation,
                c.num_iterations, c.generation_batch_size) == (2, 2, 4, 4, 8)
    with pytest.raises(ValueError, match=r"^num_minibatches=3: batch_size=8 must split into num_minibatches x "):
        CriticFreeConfig(**base, num_minibatches=3)
    four = CriticFreeConfig(**{**base, "num_minibatches": 4})  # 8 answers over 2 processes: 4 each, 4 minibatches
    with pytest.raises(TrainError, match=r"^num_minibatches=8: the 4 answers per process and step do not split"):
        eight = CriticFreeConfig(**{**base, "num_minibatches": 8})
        trl_config(eight, trl_arguments(eight, tmp_path, 2), trl.RLOOConfig)
    assert trl_config(four, trl_arguments(four, tmp_path, 2), trl.RLOOConfig).per_device_train_batch_size == 1
    # RLOOConfig has no such field: the rloo command refuses before loading anything, in one line
    assert rloo_main(["--model", "m", "--data", "d", "--out", str(tmp_path / "o"), "--scale_rewards", "none",
                      "--loss_type", "grpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("uc_align.rloo: scale_rewards='none', loss_type='grpo': GRPO-only option(s), which TRL's RLOO "
                   "has no use for; drop them, or run python -m uc_align.grpo"), err


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tiny_qwen2vl import build_tiny_qwen2vl

    from uc_align.config import DataConfig
    from uc_align.data import build
    from uc_tasks.data.synth import write_replica

    root = tmp_path_factory.mktemp("ppo_baselines")
    write_replica(root / "replica", per_concept=4, size=56, safe=True)
    replica = root / "replica"
    build(DataConfig(out=str(root / "data"), data=str(replica), safe_data=str(replica / "imagenet_1k")))
    return build_tiny_qwen2vl(root / "model"), root / "data"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["grpo", "rloo"])
def test_a_short_run_writes_the_checkpoint_folder(command: str, setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = setup
    out = tmp_path / command
    args = [sys.executable, "-m", f"uc_align.{command}", "--model", str(model), "--data", str(data), "--out",
            str(out), "--max_steps", "2", "--batch_size", "8", "--num_generations", "4", "--max_completion_length",
            "16", "--lora_r", "4", "--lora_alpha", "8", "--report_to", "none"]
    proc = subprocess.run(args, env=clean_env(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    run = json.loads((out / "uc_align.json").read_text())
    assert run["command"] == command and run["config"]["reward"] == "rule" and run["status"] == "finished"
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert any("rewards/uc_verdict_reward/mean" in r for r in log), log
