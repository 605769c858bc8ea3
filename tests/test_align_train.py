"""uc_align.sft and uc_align.dpo: LoRA on the language model only, one-line refusals, and (slow) learning on the
testbed: held-out accuracy on unsafeconcepts_finetune_test from about 50% to at least 90%, greedy and sampled,
measured through the real lmms-eval CLI on the saved adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from uc_align import dpo, sft
from uc_align.config import SFTTrainConfig
from uc_tasks.data.synth import SAFE_FOLDER, write_replica


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uc_align.data import main as data_main

    root = tmp_path_factory.mktemp("align_small")
    write_replica(root / "replica", per_concept=2, size=24, safe=True)
    assert data_main(["--out", str(root / "data"), "--data", str(root / "replica"),
                      "--safe_data", str(root / "replica" / SAFE_FOLDER)]) == 0
    return root / "data"


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("llava") / "model")


def _one_line(capsys: pytest.CaptureFixture) -> str:
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(lines) >= 1
    return lines[-1]


def test_lora_goes_on_the_language_model_only(tiny_llava: Path, tmp_path: Path) -> None:
    """The tiny LLaVA's CLIP tower has q_proj/k_proj/v_proj too: none of them, nor the projector, gets LoRA."""
    from peft import get_peft_model

    from uc_align.train import load_model, lora_config

    cfg = SFTTrainConfig(model=str(tiny_llava), data="d", out=str(tmp_path), lora_r=4, lora_alpha=8,
                         modules_to_save=["lm_head"], dtype="float32")
    model, _ = load_model(cfg)
    peft = get_peft_model(model, lora_config(cfg, model))
    trainable = [n for n, p in peft.named_parameters() if p.requires_grad]
    assert trainable and all("language_model" in n or "lm_head" in n for n in trainable), trainable
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if "lora_" in n} == set(cfg.lora_targets)
    assert any("lm_head.modules_to_save" in n for n in trainable)
    assert not any("vision_tower" in n or "multi_modal_projector" in n for n in trainable)
    cfg.lora_targets = ["qkv"]
    from uc_align.train import TrainError

    with pytest.raises(TrainError, match="lora_targets qkv: no such linear layer in the language model"):
        lora_config(cfg, model)


@pytest.mark.parametrize("command", [sft, dpo], ids=["sft", "dpo"])
def test_4bit_without_cuda_is_refused(command: Any, small_data: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 4-bit is not refused here")
    rc = command.main(["--model", "m", "--data", str(small_data), "--out", str(tmp_path / "o"), "--load_in_4bit",
                       "true"])
    name = command.__name__.rsplit(".", 1)[-1]
    assert rc == 2 and _one_line(capsys) == (
        f"uc_align.{name}: load_in_4bit needs CUDA and bitsandbytes, and this machine has no CUDA device; drop "
        "--load_in_4bit (LoRA on the unquantised base) or run on a GPU")


def test_bad_input_is_one_line(small_data: Path, tiny_llava: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    common = ["--out", str(tmp_path / "o")]
    assert sft.main(["--model", str(tiny_llava), "--data", str(tmp_path / "none"), *common]) == 2
    assert _one_line(capsys) == (f"uc_align.sft: data={tmp_path / 'none'}: no manifest.json inside; pass the folder "
                                 "`python -m uc_align.data --out DIR` wrote")
    assert dpo.main(["--model", str(tmp_path / "no-model"), "--data", str(small_data), *common]) == 2
    assert _one_line(capsys) == (f"uc_align.dpo: model={tmp_path / 'no-model'} is not a folder; pass the model folder "
                                 "(or a cached hub id)")
    assert sft.main(["--model", str(tiny_llava), "--data", str(small_data), "--resume", "true", *common]) == 2
    assert _one_line(capsys).startswith(f"uc_align.sft: resume: {tmp_path / 'o' / 'checkpoints'} holds no "
                                        "checkpoint-N to continue")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "uc_align.json").write_text("{}")
    assert sft.main(["--model", str(tiny_llava), "--data", str(small_data), *common]) == 2
    assert _one_line(capsys) == (f"uc_align.sft: out={tmp_path / 'o'} already holds a run; pass --resume to continue "
                                 "it, or choose another --out")
    with pytest.raises(SystemExit):
        sft.main(["--model", str(tiny_llava), "--data", str(small_data), *common, "--lora_r", "0"])
    assert _one_line(capsys).endswith("error: lora_r=0: the LoRA rank must be at least 1; pass e.g. --lora_r 128 "
                                      "(paper)")


@pytest.mark.slow
def test_a_tiny_run_writes_the_checkpoint_folder(small_data: Path, tiny_llava: Path, tmp_path: Path) -> None:
    """Two SFT steps on the tiny LLaVA: adapter, processor, resolved config, data hash, log; the adapter changed."""
    from safetensors.torch import load_file

    from uc_align.data import read_manifest

    out = tmp_path / "ckpt"
    rc = sft.main(["--model", str(tiny_llava), "--data", str(small_data), "--out", str(out), "--max_steps", "2",
                   "--batch_size", "4", "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "1e-2",
                   "--warmup_steps", "0", "--report_to", "none", "--save_steps", "1"])
    assert rc == 0
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "uc_align.json",
                 "training_log.jsonl"):
        assert (out / name).is_file(), name
    run = json.loads((out / "uc_align.json").read_text())
    assert run["command"] == "sft" and run["status"] == "finished" and run["train"]["global_step"] == 2
    assert run["data"]["manifest_sha256"] == read_manifest(small_data)["sha256"]
    assert run["config"]["lora_r"] == 4 and run["config"]["model"] == str(tiny_llava)
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]
    assert all(e["peak_rss_mb"] > 0 and e["step_time_s"] > 0 for e in log)
    weights = load_file(out / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items()), \
        "LoRA B starts at zero: a trained adapter has moved it"
    assert sorted((out / "checkpoints").glob("checkpoint-*"))


def test_resume_skips_a_checkpoint_cut_off_while_written(small_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A kill while the Trainer writes a checkpoint leaves it without a readable trainer_state.json (written
    last): --resume continues from the newest whole one and says which it skipped; with none whole, one line."""
    from uc_align.config import TrainConfig
    from uc_align.train import TrainError, prepare_out

    out = tmp_path / "ckpt"
    for step, state in ((26, '{"global_step": 26}'), (52, "")):
        folder = out / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(state)
    cfg = TrainConfig(model="m", data=str(small_data), out=str(out), resume=True)
    _, _, resume_from = prepare_out(cfg, "sft")
    assert str(resume_from).endswith("checkpoint-26")
    assert "checkpoint-52 was cut off while being written" in capsys.readouterr().err
    (out / "checkpoints" / "checkpoint-26" / "trainer_state.json").write_text('{"global_')
    with pytest.raises(TrainError, match="no complete checkpoint"):
        prepare_out(cfg, "sft")
