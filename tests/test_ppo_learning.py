"""PPO learns, as a user runs it: ``python -m uc_align.ppo`` on the learning testbed's data (``tests/testbed.py``),
then held-out accuracy on ``unsafeconcepts_finetune_test`` through the real lmms-eval CLI (``uc_hf_vlm`` with
``adapter=<the run's folder>``) rises from about 50% to at least 90%, greedy and sampled, without over-refusal,
with a bounded KL, the N/A rate not rising and answers nowhere near the length limit.

The model: the testbed's tiny Qwen2-VL warm-started (``ppo_testbed.warm_start``, on the testbed's training
images) on a short answer format, "Yes, it is safe." / "No, it is not safe." drawn at random (image-independent),
so it answers at chance. On the testbed's own warm model, which answers in the authors' full sentences (50-110
tokens with this 400-token vocabulary), the same PPO reached only 83-85% greedy / 73% sampled after 1,280
rollouts: the verdict is one token of 70, and the value head (explained variance about 0 over the run) gives no
credit assignment in that budget (measured here).

The settings are the paper's losses and shaping (reward +1/-1/N/A -1, -8 without EOS, length bonus
4 x tokens / 512, KL 0.1, x10, GAE 1/1, clip 0.2, value clip 0.2 x 0.1, grad clip 1.0) with three changes for
a 120k-parameter model on CPU, each measured:
- lr 1e-3, LoRA r 16 + lm_head trained in full (the paper: 3e-5, r 128, no lm_head; see ENVIRONMENT.md for
  why the warm-started tiny model needs lm_head); at lr 2e-3 the answers shortened and KL reached 30 nats;
- 4 epochs x 2 minibatches per rollout batch (the paper: one pass): with one pass, 960 rollouts at lr 2e-3
  or 5e-3 left held-out accuracy at 50%;
- entropy bonus 0 (the paper: 0.02): on this model the bonus spreads probability over the 400-token vocabulary
  on the answer's near-certain tokens, with nothing to hold them (measured: entropy 0.3 -> 1-3 nats, N/A
  answers up to 47%, accuracy at chance after 960 rollouts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ppo_testbed
import pytest
from conftest import Run
from testbed import Testbed, accuracy

pytestmark = pytest.mark.slow

FLAGS = ["--rollout_batch_size", "32", "--max_steps", "48", "--max_new_tokens", "32", "--lora_r", "16",
         "--lora_alpha", "32", "--modules_to_save", "lm_head", "--learning_rate", "1e-3", "--ppo_epochs", "4",
         "--num_minibatches", "2", "--entropy_coef", "0", "--eval_steps", "4", "--eval_sampled", "true",
         "--save_steps", "0", "--progress", "false", "--seed", "0"]
CRITIC_FREE_FLAGS = ["--batch_size", "32", "--num_generations", "4", "--max_completion_length", "32", "--max_steps",
                     "384", "--num_iterations", "4", "--num_minibatches", "2", "--lora_r", "16", "--lora_alpha", "32",
                     "--lora_dropout", "0", "--modules_to_save", "lm_head", "--learning_rate", "1e-3",
                     "--warmup_steps", "0", "--save_steps", "100000", "--report_to", "none", "--seed", "0"]
"""GRPO / RLOO on the same model, data and optimisation schedule as PPO: 32 answers per generated batch (8 prompts
x 4), 4 passes x 2 minibatches over it (TRL's num_iterations, steps_per_generation), lr 1e-3, 48 batches (384
optimizer steps, 1,536 answers), TRL's KL (beta 0.1) and gradient clip (1.0). Measured, seeds 0-4, through the
CLI after 1,536 rollouts: GRPO 100% greedy at every seed, sampled 91.3-92.7%; RLOO 100% greedy, sampled
93.3-94.7% (safe and unsafe >= 90.7% everywhere).

With TRL's one optimizer step per batch instead (lr 5e-3: at 1e-3 the reward stayed at chance) both were
seed-lotteries: RLOO 100% / 98% at seed 0 and chance at seeds 1 and 2; GRPO at best 96% / 95% with a tuned KL and
gradient clip, which became 84.7% greedy (safe images 69.3% right) on a warm model that differed only in float
rounding, and 50% / 54%, 86% / 76% and 50% / 46% at seeds 1-3."""


@pytest.fixture(scope="module")
def ppo_warm(testbed: Testbed) -> Path:
    """The testbed's base model taught the short answer format with coin-flip verdicts, built in its own process
    with one torch thread (the same warm model whatever the worker's threads)."""
    return ppo_testbed.warm_start_in_process(testbed.base, testbed.root / "ppo_warm", testbed.data / "train.jsonl")


def evaluate(testbed: Testbed, model: Path, name: str, adapter: Path | None = None) -> dict[str, Run]:
    return {mode: testbed.evaluate(testbed.root / f"eval_{name}_{mode}", adapter=adapter, model=model,
                                   sampled=mode == "sampled") for mode in ("greedy", "sampled")}


def learn(testbed: Testbed, model: Path, name: str, *changes: str) -> dict[str, Any]:
    """One PPO run through the command: its folder, log, and the steps at which held-out accuracy reached 90%."""
    out = testbed.root / name
    proc = testbed.train("ppo", out, *FLAGS, *changes, model=model)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
    evals = [r for r in log if "eval/accuracy" in r]
    reached = {kind: next((r["rollouts"] for r in evals if r[f"{prefix}/accuracy"] >= 0.9), None)
               for kind, prefix in (("greedy", "eval"), ("sampled", "eval_sampled"))}
    curve = [{k: r.get(k) for k in ("rollouts", "reward", "accuracy", "answer_length", "kl", "eval/accuracy",
                                    "eval_sampled/accuracy", "eval_sampled/na_rate")} for r in evals]
    print(json.dumps({"run": name, "rollouts_to_90": reached, "curve": curve}))
    return {"out": out, "log": log, "rollouts_to_90": reached}


@pytest.fixture(scope="module")
def before(testbed: Testbed, ppo_warm: Path) -> dict[str, dict[str, float]]:
    return {mode: accuracy(run) for mode, run in evaluate(testbed, ppo_warm, "ppo_warm").items()}


@pytest.fixture(scope="module")
def paper_shaping(testbed: Testbed, ppo_warm: Path) -> dict[str, Any]:
    run = learn(testbed, ppo_warm, "ppo")
    run["after"] = {mode: accuracy(r) for mode, r in evaluate(testbed, ppo_warm, "ppo", run["out"]).items()}
    return run


def test_the_warm_model_answers_at_chance(before: dict[str, dict[str, float]]) -> None:
    for mode, m in before.items():
        assert 0.35 <= m["accuracy"] <= 0.65 and m["na_rate"] <= 0.15, (mode, m)


def test_ppo_raises_held_out_accuracy_to_90_percent_greedy_and_sampled(before: dict[str, dict[str, float]],
                                                                        paper_shaping: dict[str, Any]) -> None:
    """Through the lmms-eval CLI on the run's folder (the final policy adapter)."""
    after = paper_shaping["after"]
    print(f"ppo: before {before} after {after}")
    for mode in ("greedy", "sampled"):
        assert after[mode]["accuracy"] >= 0.9, (mode, after)
        assert after[mode]["accuracy_safe"] >= 0.85, (mode, after)  # no over-refusal
        assert after[mode]["accuracy_unsafe"] >= 0.85, (mode, after)
        assert after[mode]["na_rate"] <= before[mode]["na_rate"] + 0.03, (mode, before, after)
    # measured with seed 0, the run's own evaluation: greedy 90% after 384 rollouts, sampled after 768, of the
    # run's 1,536 (the issue: at most 1,000); through the CLI (bench/rl_learning.py) 100% / 92% after 1,024,
    # 100% / 94% after 1,280; the run goes on to 1,536 for a margin
    reached = paper_shaping["rollouts_to_90"]
    assert reached["greedy"] is not None and reached["sampled"] is not None, reached


def test_the_reward_was_earned_by_verdicts_not_by_length(paper_shaping: dict[str, Any]) -> None:
    log = paper_shaping["log"]
    last = log[-5:]
    assert all(r["answer_length"] < 16 for r in log), [r["answer_length"] for r in log]  # limit 32, target 7-8
    assert all(r["no_eos_rate"] <= 0.1 for r in last), [r["no_eos_rate"] for r in last]
    assert sum(r["accuracy"] for r in last) / 5 >= 0.85
    assert all(r["kl"] < 15.0 for r in log), [r["kl"] for r in log]  # nats per answer against the base


def test_the_run_folder_holds_the_adapter_the_value_and_the_record(paper_shaping: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import load_file

    out = paper_shaping["out"]
    policy = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in policy.items() if "lora_B" in k]
    assert lora_b and max(float(v.abs().max()) for v in lora_b) > 1e-3  # B starts at 0
    assert any("lm_head" in k for k in policy) and not any("visual" in k for k in policy)
    checkpoint = out / "checkpoint-48"
    value = load_file(checkpoint / "value" / "adapter_model.safetensors")
    assert max(float(v.abs().max()) for k, v in value.items() if "lora_B" in k) > 1e-4
    assert float(torch.load(checkpoint / "value_head.pt")["weight"].abs().max()) > 0  # starts at 0
    run = json.loads((out / "uc_align.json").read_text())
    assert run["command"] == "ppo" and run["status"] == "finished" and run["train"]["global_step"] == 48
    assert run["data"]["manifest_sha256"] and run["train"]["final"]["eval/accuracy"] >= 0.9


def test_without_the_length_bonus_beside_the_papers_setting(testbed: Testbed, ppo_warm: Path,
                                                            paper_shaping: dict[str, Any]) -> None:
    """The issue's comparison: the same run (seed, data) with length_bonus 0, reported beside the paper's. On
    answers of 7-8 tokens the bonus is worth 0.06 against 1 for the verdict, so the two runs differ by trajectory
    noise only, read from the run's own held-out evaluation."""
    plain = learn(testbed, ppo_warm, "ppo_length_bonus_0", "--length_bonus", "0", "--eval_steps", "8")
    final = plain["log"][-1]
    assert final["eval/accuracy"] >= 0.9 and final["eval_sampled/accuracy"] >= 0.75, final
    lengths = [sum(r["answer_length"] for r in run["log"][-5:]) / 5 for run in (paper_shaping, plain)]
    print(json.dumps({"answer_length_last5": {"paper": lengths[0], "length_bonus_0": lengths[1]},
                      "rollouts_to_90": {"paper": paper_shaping["rollouts_to_90"],
                                         "length_bonus_0": plain["rollouts_to_90"]}}))


@pytest.mark.parametrize("command", ["grpo", "rloo"])
def test_the_critic_free_baselines_learn_too(testbed: Testbed, ppo_warm: Path, before: dict[str, dict[str, float]],
                                             command: str) -> None:
    """The same test for TRL's GRPO and RLOO (``python -m uc_align.grpo`` / ``rloo``, PPO's reward object, no
    value model) at PPO's optimisation schedule (``CRITIC_FREE_FLAGS``): from chance to at least 90% held-out,
    greedy and sampled, through the CLI. Rollouts to 90% greedy / sampled, side by side with PPO:
    ``bench/rl_learning.py``."""
    out = testbed.root / command
    proc = testbed.train(command, out, *CRITIC_FREE_FLAGS, model=ppo_warm)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = json.loads((out / "uc_align.json").read_text())
    assert run["command"] == command and run["status"] == "finished" and run["train"]["global_step"] == 384
    after = {mode: accuracy(r) for mode, r in evaluate(testbed, ppo_warm, command, out).items()}
    print(f"{command}: before {before} after {after}")
    for mode in ("greedy", "sampled"):
        assert after[mode]["accuracy"] >= 0.9, (mode, after)
        assert after[mode]["accuracy_safe"] >= 0.85 and after[mode]["accuracy_unsafe"] >= 0.85, (mode, after)
        assert after[mode]["na_rate"] <= before[mode]["na_rate"] + 0.03, (mode, before, after)


def test_two_accelerate_processes_learn_as_one(testbed: Testbed, ppo_warm: Path, paper_shaping: dict[str, Any]) -> None:
    """``accelerate launch --num_processes 2`` on CPU: each process samples and backpropagates 16 of the 32
    answers of a step, gradients averaged, advantages whitened over the whole batch, one log and one checkpoint
    folder. Sampling noise differs from the one-process run (each process draws with its own seed), so the
    outcome is compared, not the weights: the run's own held-out evaluation reaches 90% greedy too."""
    out = testbed.root / "ppo_dp2"
    proc = testbed.train("ppo", out, *FLAGS, "--eval_steps", "16", model=ppo_warm, processes=2)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = json.loads((out / "uc_align.json").read_text())
    assert run["processes"] == 2 and run["status"] == "finished" and run["train"]["global_step"] == 48
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
    assert [r["step"] for r in log] == list(range(1, 49)), "one writer, every step once"
    final = log[-1]
    print(json.dumps({"two_processes": {k: final[k] for k in ("eval/accuracy", "eval_sampled/accuracy", "kl")},
                      "one_process": {k: paper_shaping["log"][-1][k] for k in ("eval/accuracy",
                                                                              "eval_sampled/accuracy", "kl")}}))
    assert final["eval/accuracy"] >= 0.9 and final["eval_sampled/accuracy"] >= 0.8, final
    assert (out / "adapter_model.safetensors").is_file()
