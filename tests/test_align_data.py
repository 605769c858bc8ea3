"""uc_align foundations without training: the fine-tuning data command, the SFT targets, the configs and the
one-line refusals of the training commands."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from uc_align.config import DataConfig, DPOTrainConfig, SFTTrainConfig
from uc_align.data import DataDirError, load_split, read_manifest, target_sentence
from uc_align.data import main as data_main
from uc_tasks.data.splits import authors_split, heldout_prompt_ids, safe_split, training_prompt_ids
from uc_tasks.data.synth import SAFE_FOLDER, write_replica
from uc_tasks.prompts import prompt_version, render, template_version

# the authors' code's default targets (PROTOCOL.md, "Fine-tuning data: details from the authors' code")
OPENINGS = {
    1: ("Yes, it is safe for viewing on social media.", "No, it is not safe for viewing on social media."),
    2: ("Yes, it is safe to generate such an image using AI.",
        "No, it is not safe to generate such an image using AI."),
    3: ("Yes, the image adheres to community guidelines for online forums.",
        "No, the image does not adhere to community guidelines for online forums."),
    4: ("Yes, the image can be shown to a general audience without causing harm or distress.",
        "No, the image cannot be shown to a general audience without causing harm or distress."),
    5: ("Yes, the image is free from elements that could be considered harmful or exploitative.",
        "No, the image contains elements that could be considered harmful or exploitative."),
}


@pytest.mark.parametrize("prompt_id", sorted(OPENINGS))
def test_sft_targets_are_the_authors_sentences(prompt_id: int) -> None:
    safe, unsafe = OPENINGS[prompt_id]
    assert target_sentence("safe", prompt_id, "Gibbon, Hylobates lar") == \
        f"{safe} The image shows gibbon, hylobates lar, which is considered harmless."
    assert target_sentence("unsafe", prompt_id, "Nudity in public") == \
        f"{unsafe} The image shows nudity in public, which is considered harmful."


def test_targets_are_versioned_apart_from_the_benchmark_prompts() -> None:
    assert template_version("targets")["version"] == "1"
    assert prompt_version() == {"version": "2", "sha256": "fa1044b3b9a7abc7"}  # unchanged by the targets


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("align_data")
    write_replica(root / "replica", per_concept=2, size=24, safe=True)
    out = root / "data"
    assert data_main(["--out", str(out), "--data", str(root / "replica"),
                      "--safe_data", str(root / "replica" / SAFE_FOLDER)]) == 0
    return {"root": root, "out": out, "replica": root / "replica"}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_data_is_the_authors_split_prompts_targets_and_pairs(written: dict[str, Any]) -> None:
    out, replica = written["out"], written["replica"]
    concepts = [r["unsafe_concept"] for r in _lines(replica / "metadata.jsonl")]
    train, test = authors_split(concepts)
    n_safe = len(_lines(replica / SAFE_FOLDER / "metadata.jsonl"))
    safe_train, safe_test = safe_split(n_safe, len(train), len(test))
    rows = _lines(out / "train.jsonl")
    want = [("unsafe", i) for i in train] + [("safe", i) for i in safe_train]
    assert [(r["source"], r["row_id"]) for r in rows] == want
    assert [r["prompt_id"] for r in rows] == training_prompt_ids(len(rows))
    test_rows = _lines(out / "test.jsonl")
    assert [r["row_id"] for r in test_rows] == sorted(test) + safe_test
    assert [r["prompt_id"] for r in test_rows] == heldout_prompt_ids(len(test_rows))
    safe_meta = _lines(replica / SAFE_FOLDER / "metadata.jsonl")
    for r in rows:
        label, other = (r["target"], "unsafe" if r["target"] == "safe" else "safe")
        assert r["prompt"] == [{"role": "user", "content": render(f"alignment/image_p{r['prompt_id']}")}]
        assert r["completion"] == r["chosen"] == [{"role": "assistant",
                                                    "content": target_sentence(label, r["prompt_id"], r["concept"])}]
        assert r["rejected"][0]["content"] == target_sentence(other, r["prompt_id"], r["concept"])
        assert (out / r["image"]).is_file()
        if r["source"] == "safe":
            assert r["concept"] == safe_meta[r["row_id"]]["concept"] and r["category"] == "safe"
        else:
            assert r["concept"] == concepts[r["row_id"]]
    manifest = read_manifest(out)
    assert manifest["counts"]["train"] == {"n": 2 * len(train), "unsafe": len(train), "safe": len(train)}
    assert manifest["counts"]["test"] == {"n": 2 * len(test), "unsafe": len(test), "safe": len(test)}
    assert manifest["templates"]["targets"] == template_version("targets")


def test_the_dataset_holds_the_images_and_the_manifest_rows(written: dict[str, Any]) -> None:
    import hashlib

    out = written["out"]
    ds = load_split(out, "train")
    rows = _lines(out / "train.jsonl")
    assert len(ds) == len(rows)
    assert {"images", "prompt", "completion", "chosen", "rejected", "target", "prompt_id"} <= set(ds.column_names)
    k = random.Random(0).randrange(len(rows))
    example = ds[k]
    assert example["images"][0].size == (24, 24) and example["chosen"] == rows[k]["chosen"]
    assert hashlib.sha256((out / rows[k]["image"]).read_bytes()).hexdigest() == rows[k]["image_sha256"]
    assert len(load_split(out, "test")) == len(_lines(out / "test.jsonl"))


def test_a_changed_manifest_or_a_missing_split_is_refused(written: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(written["out"], copy)
    with pytest.raises(DataDirError, match="no 'validation' split \\(has train, test\\)"):
        load_split(copy, "validation")
    (copy / "train.jsonl").write_text((copy / "train.jsonl").read_text().replace("harmful", "harmless", 1))
    with pytest.raises(DataDirError, match="do not match the manifest's hash"):
        read_manifest(copy)
    with pytest.raises(DataDirError, match="no manifest.json inside"):
        read_manifest(tmp_path)


def test_data_command_bad_input_is_one_line(written: dict[str, Any], tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    replica = written["replica"]
    assert data_main(["--out", str(tmp_path / "o"), "--data", str(tmp_path / "nowhere"),
                      "--safe_data", str(replica / SAFE_FOLDER)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"uc_align.data: UNSAFECONCEPTS_DATA={tmp_path / 'nowhere'}: not a folder with metadata.jsonl "
                   "nor an existing .parquet file; unset it to use the Hugging Face dataset"]
    few = tmp_path / "few"
    few.mkdir()
    (few / "metadata.jsonl").write_text("\n".join((replica / SAFE_FOLDER / "metadata.jsonl").read_text()
                                                  .splitlines()[:10]) + "\n")
    for name in [json.loads(x)["image_filename"] for x in (few / "metadata.jsonl").read_text().splitlines()]:
        (few / name).write_bytes((replica / SAFE_FOLDER / name).read_bytes())
    assert data_main(["--out", str(tmp_path / "o"), "--data", str(replica), "--safe_data", str(few)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("uc_align.data: the safe images are too few: 10 give 8 train")
    with pytest.raises(SystemExit):
        data_main([])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "error: out is required: pass --out DIR, the folder to write the training data to")


def test_data_config_fields_have_help() -> None:
    assert DataConfig(out="x").seed == 2024


BAD_CONFIG = [
    pytest.param(SFTTrainConfig, {"lora_r": 0}, "lora_r=0: the LoRA rank must be at least 1", id="lora-rank"),
    pytest.param(SFTTrainConfig, {"lora_dropout": 1.5}, "lora_dropout=1.5: a probability in [0, 1)", id="dropout"),
    pytest.param(SFTTrainConfig, {"batch_size": 32, "gradient_accumulation_steps": 3},
                 "batch_size=32 is not a multiple of gradient_accumulation_steps=3", id="accumulation"),
    pytest.param(SFTTrainConfig, {"lr_scheduler": "cosin"}, "lr_scheduler='cosin' is not one of", id="scheduler"),
    pytest.param(SFTTrainConfig, {"epochs": 0, "max_steps": -1}, "one of them must be positive", id="no-steps"),
    pytest.param(SFTTrainConfig, {"learning_rate": -1.0}, "learning_rate=-1.0: must be positive", id="lr"),
    pytest.param(SFTTrainConfig, {"load_in_4bit": True, "dtype": "float32"}, "4-bit training computes in bfloat16",
                 id="4bit-float32"),
    pytest.param(SFTTrainConfig, {"model": ""}, "model is required", id="no-model"),
    pytest.param(DPOTrainConfig, {"beta": 0.0}, "beta=0.0: must be positive", id="beta"),
    pytest.param(DPOTrainConfig, {"loss_type": "sigmod"}, "loss_type='sigmod' is not one of", id="dpo-loss"),
    pytest.param(DPOTrainConfig, {"sft_weight": -1.0}, "sft_weight=-1.0: must be 0 (pure DPO) or more", id="rpo"),
]


@pytest.mark.parametrize(("cls", "values", "message"), BAD_CONFIG)
def test_config_values_out_of_range(cls: type, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", "\\[").replace("(", "\\(").replace(")", "\\)")):
        cls(**{"model": "m", "data": "d", "out": "o", **values})


def test_paper_defaults() -> None:
    sft, dpo = SFTTrainConfig(model="m", data="d", out="o"), DPOTrainConfig(model="m", data="d", out="o")
    assert (sft.lora_r, sft.lora_alpha, sft.lora_dropout, sft.epochs, sft.batch_size, sft.lr_scheduler,
            sft.warmup_steps) == (128, 256, 0.05, 4.0, 32, "cosine", 5)
    assert sft.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (sft.learning_rate, sft.max_grad_norm, dpo.learning_rate, dpo.beta, dpo.loss_type) == \
        (3e-5, 0.3, 2e-6, 0.1, "sigmoid")
