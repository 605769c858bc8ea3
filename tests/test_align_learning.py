"""SFT and DPO on the testbed (``tests/testbed.py``): held-out accuracy on unsafeconcepts_finetune_test, measured
through the real lmms-eval CLI with ``--model uc_hf_vlm --model_args pretrained=<warm>,adapter=<ckpt>``, goes from
about 50% to at least 90%, greedy and sampled (temperature 1), for SFT and for DPO with an NLL term on the chosen
answer (RPO); pure DPO at the paper's beta widens its margins without learning the image (pinned as such); the
adapter's parameters changed; a run killed mid-way and resumed ends where an uninterrupted one does; the answers
re-read in the authors' fine-tuning format give the task's numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, REPO, Run
from testbed import LEARNING, SFT_FLAGS, TASK, Testbed, accuracy

pytestmark = pytest.mark.slow

DPO_FLAGS = [*LEARNING, "--learning_rate", "5e-3", "--epochs", "4", "--save_steps", "26"]
RPO_FLAGS = [*DPO_FLAGS, "--sft_weight", "1.0"]
PURE_DPO_FLAGS = [*LEARNING, "--learning_rate", "5e-3", "--epochs", "1"]
"""Tiny-model settings (26 steps per epoch); DPO keeps the paper's beta 0.1 and sigmoid loss."""


def _train(testbed: Testbed, command: str, name: str, flags: list[str]) -> Path:
    out = testbed.root / name
    proc = testbed.train(command, out, *flags)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def rpo_checkpoint(testbed: Testbed) -> Path:
    return _train(testbed, "dpo", "rpo", RPO_FLAGS)


def _changed(testbed: Testbed, checkpoint: Path) -> None:
    """LoRA B starts at zero and lm_head at the warm model's: both moved."""
    import torch
    from safetensors.torch import load_file

    adapter = load_file(checkpoint / "adapter_model.safetensors")
    b = [v for k, v in adapter.items() if k.endswith("lora_B.weight")]
    assert b and all(v.abs().sum() > 0 for v in b), "a LoRA B matrix is still zero"
    head = next(v for k, v in adapter.items() if "lm_head" in k)
    warm = load_file(testbed.warm / "model.safetensors")["lm_head.weight"]
    assert not torch.allclose(head, warm), "lm_head (modules_to_save) did not change"
    assert not any("visual" in k for k in adapter), "the vision tower must stay frozen"


def _evaluate(testbed: Testbed, checkpoint: Path, name: str) -> dict[str, Run]:
    return {"greedy": testbed.evaluate(testbed.root / f"eval_{name}_greedy", adapter=checkpoint),
            "sampled": testbed.evaluate(testbed.root / f"eval_{name}_sampled", adapter=checkpoint, sampled=True)}


@pytest.fixture(scope="module")
def sft_runs(testbed: Testbed, sft_checkpoint: Path) -> dict[str, Run]:
    return _evaluate(testbed, sft_checkpoint, "sft")


def _learned(baseline: dict[str, Any], runs: dict[str, Run], name: str) -> dict[str, dict[str, float]]:
    got = {mode: accuracy(run) for mode, run in runs.items()}
    print(f"{name}: before {({k: baseline[k] for k in ('greedy', 'sampled')})} after {got}")
    for mode, m in got.items():
        assert m["accuracy"] >= 0.9, f"{name} {mode}: {m} (before: {baseline[mode]})"
        assert m["accuracy_safe"] >= 0.8 and m["accuracy_unsafe"] >= 0.8, f"{name} {mode}: {m}"
        assert m["na_rate"] <= 0.05, f"{name} {mode}: {m}"
    return got


def test_the_warm_model_answers_at_chance(testbed_baseline: dict[str, Any]) -> None:
    for mode in ("greedy", "sampled"):
        m = testbed_baseline[mode]
        assert 0.35 <= m["accuracy"] <= 0.65 and m["na_rate"] <= 0.1, f"{mode}: {m}"
    answers = [s["filtered_resps"] for s in testbed_baseline["runs"]["greedy"].samples[TASK]]
    assert sum(a.startswith(("Yes, ", "No, ")) for a in answers) >= 0.9 * len(answers), answers[:5]


def test_sft_learns(testbed: Testbed, testbed_baseline: dict[str, Any], sft_checkpoint: Path,
                    sft_runs: dict[str, Run]) -> None:
    _learned(testbed_baseline, sft_runs, "sft")
    _changed(testbed, sft_checkpoint)
    run = json.loads((sft_checkpoint / "uc_align.json").read_text())
    assert run["status"] == "finished" and run["train"]["global_step"] == 104 and run["config"]["lora_r"] == 16
    assert (sft_checkpoint / "tokenizer.json").is_file() and (sft_checkpoint / "adapter_config.json").is_file()


def test_dpo_with_an_nll_term_learns(testbed: Testbed, testbed_baseline: dict[str, Any], rpo_checkpoint: Path) -> None:
    """DPO on the paper's pairs plus an NLL term on the chosen answer (``--sft_weight 1``, RPO): from chance to at
    least 90%. Pure DPO does not get there on this testbed (``test_pure_dpo_learns_the_text_not_the_image``)."""
    _learned(testbed_baseline, _evaluate(testbed, rpo_checkpoint, "rpo"), "rpo")
    _changed(testbed, rpo_checkpoint)
    log = [json.loads(x) for x in (rpo_checkpoint / "training_log.jsonl").read_text().splitlines()]
    margins = [e["rewards/margins"] for e in log if "rewards/margins" in e]
    assert margins[-1] > margins[0] + 1, "the chosen answers did not pull away from the rejected ones"


def test_pure_dpo_learns_the_text_not_the_image(testbed: Testbed, testbed_baseline: dict[str, Any]) -> None:
    """Pure DPO at the paper's beta (0.1) on the paper's pairs: the chosen and rejected answers name the same
    concept, so "Yes ... <an unsafe concept>" and "No ... <a safe class>" are wrong in every pair whatever the
    image. DPO widens its margins on these text associations (no image needed) while the verdict, the one token
    that needs the image, stays near chance and the answer format erodes. Pinned here: the margins grow, the
    held-out sampled accuracy does not reach what SFT and DPO+NLL reach. (The paper's DPO also stayed below
    the original model's accuracy: .648 vs .736.)"""
    out = _train(testbed, "dpo", "dpo_pure", PURE_DPO_FLAGS)
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    margins = [e["rewards/margins"] for e in log if "rewards/margins" in e]
    assert margins[-1] > margins[0] + 1
    sampled = accuracy(testbed.evaluate(testbed.root / "eval_dpo_pure_sampled", adapter=out, sampled=True))
    print(f"pure DPO: before {testbed_baseline['sampled']} after {sampled}")
    assert sampled["accuracy"] < 0.8, sampled


def _readable(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def test_a_killed_run_resumes_to_the_same_adapter(testbed: Testbed, sft_checkpoint: Path) -> None:
    """SIGKILL after the first checkpoint, then --resume: the same adapter as the uninterrupted run."""
    import torch
    from safetensors.torch import load_file

    out = testbed.root / "sft_killed"
    args = [str(BIN / "python"), "-m", "uc_align.sft", "--model", str(testbed.warm), "--data", str(testbed.data),
            "--out", str(out), *SFT_FLAGS]
    proc = subprocess.Popen(args, env=testbed.env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    first = out / "checkpoints" / "checkpoint-26" / "trainer_state.json"  # written last: the checkpoint is whole
    deadline = time.time() + 600
    while not _readable(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.is_file(), proc.stderr.read().decode()[-3000:] if proc.stderr else "no checkpoint"
    assert not (out / "adapter_model.safetensors").exists(), "the run finished before it was killed"
    resumed = testbed.train("sft", out, *SFT_FLAGS, "--resume", "true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = json.loads((out / "uc_align.json").read_text())
    assert run["status"] == "finished" and run["resumed_from"].endswith("checkpoint-26")
    a, b = load_file(out / "adapter_model.safetensors"), load_file(sft_checkpoint / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    steps = [e["step"] for e in map(json.loads, (out / "training_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert steps[-1] == 104 and 27 in steps


def test_rescore_of_the_answers_in_the_authors_format(testbed: Testbed, sft_runs: dict[str, Run],
                                                      tmp_path: Path) -> None:
    """The SFT model's greedy answers written as the authors' fine-tuning answer file (data/images/N.png,
    data/imagenet_1k/N.png) and re-read by rescore (no metadata) give the task's headline numbers."""
    run = sft_runs["greedy"]
    rows = []
    for s in run.samples[TASK]:
        b = s["breakdown"]
        folder = "imagenet_1k" if b["target"] == "safe" else "images"
        rows.append({"idx": str(b["row_id"]), "prompt": s["input"], "image_fname": f"data/{folder}/{b['row_id']}.png",
                     "output": s["filtered_resps"]})
    answers = tmp_path / "sft_finetune_test.json"
    answers.write_text(json.dumps(rows))
    proc = subprocess.run([str(BIN / "python"), "-m", "uc_tasks.rescore", str(answers)], env=testbed.env(),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tmp_path / "rescored_rule.json").read_text())["results"]["finetune_test"]
    for name in ("accuracy", "accuracy_safe", "accuracy_unsafe", "na_rate", "diversity"):
        assert got[name] == pytest.approx(run.metric(TASK, name)), name


def test_two_accelerate_processes_train_as_one(testbed: Testbed) -> None:
    """``accelerate launch --num_processes 2`` on CPU: each process takes 8 of every global batch of 16 and the
    gradients are averaged over the tokens of both halves, so 8 steps end at the adapter one process reaches on
    the same batches (measured: the same losses and gradient norms to 4 digits, weights within 1.5e-5). Without
    CPU processes asked for explicitly (``uc_align.distributed.process_state``) both processes trained alone and
    ended 0.03 apart: this test caught it."""
    from safetensors.torch import load_file

    flags = [*LEARNING, "--learning_rate", "5e-3", "--max_steps", "8"]
    one = _train(testbed, "sft", "sft_dp1", flags)
    out = testbed.root / "sft_dp2"
    proc = testbed.train("sft", out, *flags, processes=2)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = json.loads((out / "uc_align.json").read_text())
    assert run["status"] == "finished" and run["train"]["global_step"] == 8 and run["config"]["batch_size"] == 16
    assert run["processes"] == 2
    a, b = load_file(one / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    largest = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert largest < 1e-4, f"two processes ended {largest} away from one"
    warm = load_file(testbed.warm / "model.safetensors")["lm_head.weight"]
    head = next(v for k, v in a.items() if "lm_head" in k)
    assert float((head - warm).abs().max()) > 1e-3, "the 8 steps changed nothing, so the comparison shows nothing"
    losses = [[e["loss"] for e in map(json.loads, (d / "training_log.jsonl").read_text().splitlines()) if "loss" in e]
              for d in (one, out)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-3)
