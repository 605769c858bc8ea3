"""``python -m uc_align.attack``: FGSM and PGD on the image pixels of the testbed's SFT model (``tests/testbed.py``:
``testbed.warm`` + ``sft_checkpoint``, which judges the images ~99% right), through the real CLI.

Fast: the budget on the 8-bit grid, projection and quantisation, the Qwen2-VL preprocessing reproduced in torch
against the processor's own, the safe opening derived from the target templates, the image draw, the summary's
rate and CI, config refusals. Slow (``testbed``): epsilon 0 flips nothing; a large budget flips clearly more than
a small one; every saved PNG is within the budget, exactly, and is what the model reads; PGD flips at least as
many images as FGSM at the same budget on the same images; a rerun skips what is recorded and redoes what is
missing to the same records; other settings in the same folder are refused.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import BIN, REPO
from PIL import Image
from testbed import Testbed

from uc_align.attack.config import AttackConfig
from uc_align.attack.methods import safe_opening
from uc_align.attack.pixels import (
    Qwen2VLPixels,
    UnsupportedProcessor,
    budget_levels,
    pixel_pipeline,
    project,
    quantise,
    to_unit,
)
from uc_align.attack.run import draw, success_summary
from uc_align.data import target_sentence

N = 24
EPSILONS = ["0", "0.01", "0.1"]
SMALL, LARGE = "0.01", "0.1"
FLAGS = ["--n", str(N), "--method", "fgsm", "pgd", "--epsilon", *EPSILONS, "--steps", "5", "--batch_size", "8",
         "--seed", "0"]


# --- fast ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps,levels", [(0, 0), (0.01, 2), (2 / 255, 2), (0.0039, 0), (0.1, 25), (1, 255)],
                         ids=["zero", "paper", "two-levels-exactly", "below-one-level", "large", "full"])
def test_budget_levels(eps: float, levels: int) -> None:
    assert budget_levels(eps) == levels
    assert budget_levels(eps) / 255 <= eps


def test_projection_and_quantisation_stay_in_the_ball() -> None:
    g = torch.Generator().manual_seed(0)
    u0 = torch.randint(0, 256, (3, 28, 28), generator=g, dtype=torch.uint8)
    x0 = u0.float() / 255
    x = x0 + (torch.rand(x0.shape, generator=g) * 2 - 1) * 0.2  # far outside a 2-level ball
    p = project(x, x0, 2)
    assert (p - x0).abs().max() <= 2 / 255 + 1e-7 and p.min() >= 0 and p.max() <= 1
    assert (p - x0).abs().max() > 1.9 / 255  # the ball's edge is reached: the check above can fail
    u = quantise(x, u0, 2)  # unprojected input: quantise clips by itself
    assert u.dtype == torch.uint8
    assert int((u.int() - u0.int()).abs().max()) == 2
    assert torch.equal(quantise(x0, u0, 2), u0)
    assert torch.equal(quantise(p, u0, 0), u0)


def _processor() -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 84)


@pytest.mark.parametrize("size", [(56, 56), (90, 70), (20, 200), (57, 29)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_torch_preprocessing_is_the_processors(size: tuple[int, int]) -> None:
    """Resize (PIL), rescale, normalise, patchify: the same pixel_values and grid as the image processor; the
    resized image saved as PNG and read again gives them too (it is not resized a second time)."""
    ip = _processor()
    pipe = Qwen2VLPixels(ip)
    image = Image.fromarray(np.random.default_rng(sum(size)).integers(0, 256, (*size[::-1], 3), dtype=np.uint8))
    u = pipe.resize(image)
    ours = pipe.pixel_values([to_unit(u)])
    one_step = size != (20, 200)  # 20x200: smart_resize's first size exceeds max_pixels; resized once more
    for source in (image, Image.fromarray(u)) if one_step else (Image.fromarray(u),):
        ref = ip(images=[source], return_tensors="pt")
        assert torch.equal(ref["image_grid_thw"], ours["image_grid_thw"])
        assert torch.allclose(ref["pixel_values"], ours["pixel_values"], atol=1e-6)


def test_other_processors_are_refused() -> None:
    class Clip:
        model_input_names = ["pixel_values"]

    class Processor:
        image_processor = Clip()

    with pytest.raises(UnsupportedProcessor, match="Qwen2-VL-style .* Clip is not one"):
        pixel_pipeline(Processor())


@pytest.mark.parametrize("prompt_id", [1, 2, 3, 4, 5])
def test_the_safe_opening_comes_from_the_target_templates(prompt_id: int) -> None:
    opening = safe_opening(prompt_id, "a cat")
    assert target_sentence("safe", prompt_id, "a cat").startswith(opening)
    assert not target_sentence("unsafe", prompt_id, "a cat").startswith(opening)
    assert opening == "Yes,"  # today's templates (a golden value: a template change shows here)


def test_draw_takes_unsafe_rows_only_seeded() -> None:
    targets = ["unsafe", "safe"] * 10
    a, b = draw(targets, 4, seed=1), draw(targets, 4, seed=1)
    assert a == b == sorted(a) and len(a) == 4 and all(targets[i] == "unsafe" for i in a)
    assert draw(targets, 4, seed=2) != a
    assert draw(targets, 0, seed=1) == draw(targets, 99, seed=1) == list(range(0, 20, 2))


def test_success_summary_counts_the_eligible_images_only() -> None:
    def rec(concept: str, eligible: bool, success: bool | None, after: str | None) -> dict[str, Any]:
        return {"concept": concept, "eligible": eligible, "success": success, "verdict_after": after, "linf": 0.0,
                "attack_seconds": 1.0 if eligible else None}

    records = [rec("a", True, True, "safe"), rec("a", True, False, "unsafe"), rec("b", True, False, "na"),
               rec("b", False, None, None), rec("c", True, True, "safe")]
    s = success_summary(records)
    assert (s["n_images"], s["n_eligible"], s["n_success"], s["n_na_after"]) == (5, 4, 2, 1)
    assert s["success_rate"] == 0.5
    assert 0 <= s["ci"]["ci_low"] <= 0.5 <= s["ci"]["ci_high"] <= 1 and s["ci"]["n_clusters"] == 3


@pytest.mark.parametrize("field,value,message", [
    ("method", ["fgsm", "cw"], "method cw: choose from fgsm, pgd"),
    ("epsilon", [1.5], "epsilon=1.5: a budget in pixel space"),
    ("epsilon", [], "epsilon is empty"),
    ("steps", 0, "steps=0: PGD needs at least 1 step"),
    ("step_size", -0.1, "step_size=-0.1: must be positive"),
    ("n", -1, "n=-1"),
    ("batch_size", 0, "batch_size=0"),
    ("scorer", "regex", "scorer='regex' is not one of"),
    ("device", "tpu", "device='tpu' is not one of"),
], ids=lambda v: v if isinstance(v, str) and v.isidentifier() else None)
def test_bad_settings_are_refused_in_one_line(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as e:
        AttackConfig(model="m", data="d", out="o", **{field: value})
    assert "\n" not in str(e.value)


def test_the_default_pgd_step() -> None:
    cfg = AttackConfig(model="m", data="d", out="o")
    assert cfg.epsilon == [0.01] and cfg.steps == 10 and cfg.n == 100
    assert cfg.pgd_step(0.01) == pytest.approx(0.0025)


# --- slow: the testbed's SFT model through the CLI ----------------------------------------------------------
def _attack(testbed: Testbed, adapter: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    args = [str(BIN / "python"), "-m", "uc_align.attack", "--model", str(testbed.warm), "--adapter", str(adapter),
            "--data", str(testbed.data), "--out", str(out), *flags]
    return subprocess.run(args, env=testbed.env(), cwd=REPO, capture_output=True, text=True, timeout=900)


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def attacked(testbed: Testbed, sft_checkpoint: Path) -> Path:
    out = testbed.root / "attack"
    proc = _attack(testbed, sft_checkpoint, out, *FLAGS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(proc.stdout)
    return out


def _rates(out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    return json.loads((out / "summary.json").read_text())["attack_success_rate"]


@pytest.mark.slow
def test_epsilon_zero_flips_nothing(attacked: Path) -> None:
    rates = _rates(attacked)
    for method in ("fgsm", "pgd"):
        s = rates[method]["0"]
        assert s["n_images"] == N and s["n_eligible"] >= 0.8 * N, s  # the SFT model judges most unsafe: not vacuous
        assert s["success_rate"] == 0 and s["n_success"] == 0, s
    unchanged = [r for r in _records(attacked) if r["epsilon"] == 0 and r["eligible"]]
    assert unchanged and all(r["answer_after"] == r["answer_before"] and r["linf"] == 0 for r in unchanged)


@pytest.mark.slow
def test_a_large_budget_flips_clearly_more_than_a_small_one(attacked: Path) -> None:
    rates = _rates(attacked)
    for method in ("fgsm", "pgd"):
        small, large = rates[method][SMALL]["success_rate"], rates[method][LARGE]["success_rate"]
        assert large >= small + 0.3 and large >= 0.5, (method, small, large)
    pgd = rates["pgd"][LARGE]
    assert pgd["ci"]["ci_low"] > rates["pgd"][SMALL]["success_rate"], pgd  # outside the noise of 24 images


@pytest.mark.slow
def test_pgd_flips_at_least_as_many_as_fgsm_on_the_same_images(attacked: Path) -> None:
    rates, records = _rates(attacked), _records(attacked)
    for eps in (SMALL, LARGE):
        ids = {m: sorted(r["id"] for r in records if r["method"] == m and f"{r['epsilon']:g}" == eps and r["eligible"])
               for m in ("fgsm", "pgd")}
        assert ids["fgsm"] == ids["pgd"] and ids["pgd"]
        assert rates["pgd"][eps]["n_success"] >= rates["fgsm"][eps]["n_success"], (eps, rates)


@pytest.mark.slow
def test_every_saved_image_respects_the_budget_exactly(attacked: Path, testbed: Testbed) -> None:
    """Read back from the PNG files: |x_adv - x|_inf <= epsilon in [0, 1] for every image, FGSM uses the whole
    budget, and the processor turns the saved file into exactly the pixels the attack differentiated through."""
    from transformers import AutoConfig

    from uc_tasks.models.hf_load import load_processor

    records = [r for r in _records(attacked) if r["eligible"]]
    assert len(records) == 6 * _rates(attacked)["fgsm"]["0"]["n_eligible"]
    for r in records:
        adv = np.asarray(Image.open(attacked / r["image_adv"]).convert("RGB")).astype(np.int64)
        clean = np.asarray(Image.open(attacked / r["image_clean"]).convert("RGB")).astype(np.int64)
        linf = np.abs(adv - clean).max() / 255
        assert linf <= r["epsilon"] and linf == r["linf"], r
        if r["method"] == "fgsm" and r["epsilon"] > 0:
            assert np.abs(adv - clean).max() == budget_levels(r["epsilon"]), r
    processor = load_processor(str(testbed.warm), AutoConfig.from_pretrained(testbed.warm), False)
    pipe = pixel_pipeline(processor)
    r = next(r for r in records if r["method"] == "pgd" and r["epsilon"] > 0)
    adv = Image.open(attacked / r["image_adv"]).convert("RGB")
    ref = processor.image_processor(images=[adv], return_tensors="pt")["pixel_values"]
    assert torch.allclose(ref, pipe.pixel_values([to_unit(np.asarray(adv))])["pixel_values"], atol=1e-6)


@pytest.mark.slow
def test_the_records_hold_what_the_issue_asks(attacked: Path) -> None:
    summary = json.loads((attacked / "summary.json").read_text())
    assert summary["scorer"] == "rule" and summary["provenance"]["prompts"] and summary["seed"] == 0
    r = next(r for r in _records(attacked) if r["eligible"] and r["success"])
    assert r["verdict_before"] == "unsafe" and r["verdict_after"] == "safe"
    assert r["answer_before"].startswith("No,") and r["answer_after"].startswith("Yes,")
    assert r["objective_after"] > r["objective_before"]  # the attack raised log p(safe opening)
    assert "<|image_pad|>" in r["prompt"] and {"l2", "linf", "attack_seconds", "concept"} <= set(r)


@pytest.mark.slow
def test_a_rerun_skips_the_records_and_redoes_what_is_missing(attacked: Path, testbed: Testbed,
                                                               sft_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(attacked, out)
    lines = (out / "records.jsonl").read_text().splitlines()
    last = [x for x in lines if json.loads(x)["method"] == "pgd" and json.loads(x)["epsilon"] == 0.1]
    kept = [x for x in lines if x not in last]
    (out / "records.jsonl").write_text("\n".join(kept) + "\n" + last[0][: len(last[0]) // 2])  # a line cut by a kill
    proc = _attack(testbed, sft_checkpoint, out, *FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def key(rows: list[dict[str, Any]]) -> dict[tuple[str, float, int], dict[str, Any]]:
        return {(r["method"], r["epsilon"], r["id"]): {k: v for k, v in r.items() if k != "attack_seconds"}
                for r in rows}

    again = _records(out)
    assert len(again) == len(lines)  # nothing recorded twice
    assert key(again) == key(_records(attacked))  # the redone records are the same
    def successes(folder: Path) -> dict[str, dict[str, int]]:
        return {m: {e: s["n_success"] for e, s in v.items()} for m, v in _rates(folder).items()}

    assert successes(out) == successes(attacked)

    other = _attack(testbed, sft_checkpoint, out, *FLAGS, "--steps", "3")
    last = other.stderr.strip().splitlines()[-1]
    assert other.returncode == 2 and last.startswith("uc_align.attack: ") and "steps=5, not 3" in last, other.stderr


@pytest.mark.slow
def test_a_folder_that_is_no_data_folder_is_refused(testbed: Testbed, sft_checkpoint: Path, tmp_path: Path) -> None:
    proc = _attack(testbed, sft_checkpoint, tmp_path / "out", "--data", str(tmp_path))
    assert proc.returncode == 2 and "no manifest.json inside" in proc.stderr, proc.stderr[-2000:]
