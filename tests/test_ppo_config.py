"""PPOConfig: the paper's defaults, help on every field, --config YAML, cross-field checks that name the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ppo_testbed  # noqa: F401  (puts the checkout on sys.path for uc_align)
import pytest

from uc_align.ppo.__main__ import main
from uc_align.ppo.config import PPOConfig
from uc_tasks.config import parse_config


def test_defaults_are_the_papers() -> None:
    c = PPOConfig()
    assert (c.reward, c.na_reward, c.no_eos_penalty, c.length_bonus, c.length_norm) == ("rule", -1.0, -8.0, 4.0, 512)
    assert (c.kl_coef, c.reward_scale, c.gamma, c.lam, c.cliprange, c.cliprange_value) == (0.1, 10.0, 1, 1, 0.2, 0.2)
    assert (c.vf_coef, c.entropy_coef, c.ppo_epochs, c.num_minibatches, c.max_grad_norm) == (0.1, 0.02, 1, 1, 1.0)
    assert (c.learning_rate, c.warmup_steps, c.epochs, c.rollout_batch_size, c.seed) == (3e-5, 5, 4, 32, 42)
    assert (c.temperature, c.top_p, c.top_k, c.max_new_tokens, c.max_prompt_tokens) == (1.0, 1.0, 0, 512, 128)
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.modules_to_save) == (128, 256, 0.05, [])
    assert c.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert c.save_steps == 50


def test_every_field_has_help_text_and_the_length_bonus_warns() -> None:
    fields = dataclasses.fields(PPOConfig)
    assert all(f.metadata.get("help") for f in fields)
    assert "WARNING" in next(f for f in fields if f.name == "length_bonus").metadata["help"]


def test_data_folder_sets_the_train_and_test_files() -> None:
    c = PPOConfig(data="/d")
    assert (c.train_file, c.eval_file) == ("/d/train.jsonl", "/d/test.jsonl")
    assert PPOConfig(data="/d", eval_file="held.jsonl").eval_file == "held.jsonl"


def test_yaml_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "ppo.yaml"
    path.write_text("learning_rate: 0.002\nrollout_batch_size: 16\nmodules_to_save: [lm_head]\nlength_bonus: 0\n")
    c = parse_config(PPOConfig, ["--config", str(path), "--rollout_batch_size", "8"], "test")
    assert (c.learning_rate, c.rollout_batch_size, c.modules_to_save, c.length_bonus) == (0.002, 8, ["lm_head"], 0.0)


@pytest.mark.parametrize(("changes", "message"), [
    pytest.param({"reward": "clasifier"}, "reward='clasifier': must be one of rule, classifier, judge", id="reward"),
    pytest.param({"rollout_batch_size": 32, "num_minibatches": 3}, "num_minibatches=3: must divide "
                 "rollout_batch_size=32; choose a divisor", id="minibatches"),
    pytest.param({"temperature": 0.0}, "temperature=0.0: must be above 0", id="temperature"),
    pytest.param({"top_p": 1.5}, "top_p=1.5: must be in (0, 1]", id="top_p"),
    pytest.param({"eval_steps": 5}, "eval_steps=5: asks for held-out evaluation but eval_file is empty; give "
                 "--eval_file", id="eval-without-file"),
    pytest.param({"reward": "classifier", "na_reward": 0.0}, "na_reward=0.0: is not used by reward=classifier",
                 id="na-reward-classifier"),
    pytest.param({"gamma": 1.5}, "gamma=1.5, lam=1.0: both must be in [0, 1]", id="gamma"),
    pytest.param({"lora_target_modules": []}, "lora_target_modules=[]: is empty", id="no-lora"),
    pytest.param({"rollout_engine": "sglang"}, "rollout_engine='sglang': must be one of hf, vllm", id="engine"),
    pytest.param({"rollout_engine": "vllm", "modules_to_save": ["lm_head"]}, "modules_to_save=['lm_head']: cannot "
                 "be served by vLLM, whose runtime LoRA loading takes LoRA layers only", id="vllm-modules-to-save"),
    pytest.param({"rollout_engine": "vllm", "lora_target_modules": ["q_proj", "lm_head"]}, "lora_target_modules="
                 "['q_proj', 'lm_head']: has lm_head, whose LoRA vLLM 0.32 does not apply", id="vllm-lm-head-lora"),
])
def test_bad_combinations_name_the_value_the_rule_and_the_fix(changes: dict, message: str) -> None:
    with pytest.raises(ValueError) as e:
        PPOConfig(**changes)
    assert message in str(e.value)


def test_the_command_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([])
    assert "give --model and --train_file (or --data DIR" in str(e.value.code)
    with pytest.raises(SystemExit):
        main(["--top_p", "2"])
    assert "top_p=2.0: must be in (0, 1]" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_4bit_without_cuda_is_refused_in_one_line(tmp_path: Path) -> None:
    from tiny_qwen2vl import build_tiny_qwen2vl

    from uc_align.ppo.items import write_items

    model = build_tiny_qwen2vl(tmp_path / "model")
    items = write_items(tmp_path / "train.jsonl", ppo_testbed.make_items(8, seed=0))
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model), "--train_file", str(items), "--out", str(tmp_path / "out"),
              "--rollout_batch_size", "8", "--load_in_4bit", "true"])
    assert str(e.value.code) == ("uc_align.ppo: load_in_4bit=true needs CUDA, and this machine has none; set "
                                 "load_in_4bit false")


def test_the_vllm_engine_without_vllm_is_refused_in_one_line(tmp_path: Path) -> None:
    from tiny_qwen2vl import build_tiny_qwen2vl

    from uc_align.ppo.items import write_items

    model = build_tiny_qwen2vl(tmp_path / "model")
    items = write_items(tmp_path / "train.jsonl", ppo_testbed.make_items(8, seed=0))
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model), "--train_file", str(items), "--out", str(tmp_path / "out"),
              "--rollout_batch_size", "8", "--rollout_engine", "vllm", "--vllm_python", str(tmp_path / "none")])
    assert str(e.value.code) == (f"uc_align.ppo: no Python with vllm at {tmp_path / 'none'}: run `bash "
                                 "scripts/setup_vllm.sh` (makes .venv-vllm) or pass --vllm_python PATH")
