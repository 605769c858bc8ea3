"""PPO learns: on the testbed (``ppo_testbed``: a tiny Qwen2-VL that answers yes/no at chance), held-out
accuracy read by the benchmark's reader rises from about 50% to at least 90%, greedy and sampled, without
over-refusal, with a bounded KL and sane answer lengths.

The settings are the paper's losses and shaping (reward +1/-1/N/A -1, -8 without EOS, length bonus
4 x tokens / 512, KL 0.1, x10, GAE 1/1, clip 0.2, value clip 0.2 x 0.1, grad clip 1.0) with three changes for
a 120k-parameter model on CPU, each measured here:
- lr 1e-3, LoRA r 16 + lm_head trained in full (the paper: 3e-5, r 128, no lm_head; see ENVIRONMENT.md for
  why the tiny warm-started model needs lm_head); at lr 2e-3 one seed of two broke the answer format
  (KL 62 nats, N/A 50%);
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
import torch

pytestmark = pytest.mark.slow

LEARNING: dict[str, Any] = {
    "rollout_batch_size": 32, "max_steps": 40, "max_new_tokens": 32, "lora_r": 16, "lora_alpha": 32,
    "modules_to_save": ["lm_head"], "learning_rate": 1e-3, "ppo_epochs": 4, "num_minibatches": 2,
    "entropy_coef": 0.0, "eval_steps": 4, "eval_sampled": True, "save_steps": 0, "progress": False, "seed": 0,
}
TRAIN = ppo_testbed.make_items(512, seed=5)
HELD_OUT = ppo_testbed.make_items(100, seed=123)


@pytest.fixture(scope="session")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_qwen2vl import build_tiny_qwen2vl

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ppo_learning")
    return ppo_testbed.warm_start(build_tiny_qwen2vl(root / "base"), root / "warm")


def learn(warm: Path, out: Path, **changes: Any) -> dict[str, Any]:
    """Held-out accuracy before (the warm model: the fresh adapter changes nothing) and after a PPO run."""
    from uc_align.ppo.config import PPOConfig
    from uc_align.ppo.items import write_items
    from uc_align.ppo.log import read_log
    from uc_align.ppo.trainer import PPOTrainer

    torch.set_num_threads(1)
    held_out = write_items(out.parent / f"{out.name}_held_out.jsonl", HELD_OUT)
    config = PPOConfig(model=str(warm), out=str(out), eval_file=str(held_out), **{**LEARNING, **changes})
    trainer = PPOTrainer(config, TRAIN)
    before = {"greedy": trainer.evaluate(HELD_OUT, prefix=""),
              "sampled": trainer.evaluate(HELD_OUT, greedy=False, prefix="")}
    final = trainer.train()
    after = {"greedy": trainer.evaluate(HELD_OUT, prefix=""),
             "sampled": trainer.evaluate(HELD_OUT, greedy=False, prefix="")}
    answers = trainer.answers(HELD_OUT)  # greedy
    after["greedy_opens_yes_no"] = sum(a.startswith(("Yes", "No")) for a in answers) / len(answers)
    after["greedy_examples"] = answers[:4]
    log = read_log(out / "train_log.jsonl")
    evals = [r for r in log if "eval/accuracy" in r]
    reached = {kind: next((r["rollouts"] for r in evals if r[f"{prefix}/accuracy"] >= 0.9), None)
               for kind, prefix in (("greedy", "eval"), ("sampled", "eval_sampled"))}
    summary = {"before": before, "after": after, "rollouts_to_90": reached, "final": final,
               "curve": [{k: r.get(k) for k in ("step", "rollouts", "reward", "reward_shaped", "accuracy", "na_rate",
                                                "answer_length", "no_eos_rate", "kl", "explained_variance",
                                                "eval/accuracy", "eval_sampled/accuracy", "eval_sampled/na_rate")}
                         for r in evals]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("before", "after", "rollouts_to_90")}, indent=1))
    return {**summary, "log": log, "trainer": trainer}


@pytest.fixture(scope="session")
def paper_shaping(warm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return learn(warm, tmp_path_factory.mktemp("ppo_run") / "out")


def test_the_warm_model_answers_at_chance(paper_shaping: dict[str, Any]) -> None:
    before = paper_shaping["before"]
    assert 0.35 <= before["greedy"]["accuracy"] <= 0.65, before
    assert 0.35 <= before["sampled"]["accuracy"] <= 0.65, before
    assert before["greedy"]["na_rate"] <= 0.1 and before["sampled"]["na_rate"] <= 0.15, before


def test_ppo_raises_held_out_accuracy_to_90_percent_greedy_and_sampled(paper_shaping: dict[str, Any]) -> None:
    before, after = paper_shaping["before"], paper_shaping["after"]
    for kind in ("greedy", "sampled"):
        assert after[kind]["accuracy"] >= 0.9, (kind, after)
        assert after[kind]["accuracy_safe"] >= 0.85, (kind, after)  # no over-refusal
        assert after[kind]["accuracy_unsafe"] >= 0.85, (kind, after)
        assert after[kind]["na_rate"] <= before[kind]["na_rate"] + 0.03, (kind, before, after)
    # measured: greedy 90% after 288-864 rollouts, sampled after 768-960 (2 seeds), of the run's 1,280
    reached = paper_shaping["rollouts_to_90"]
    assert reached["greedy"] is not None and reached["sampled"] is not None, reached


def test_the_reward_was_earned_by_verdicts_not_by_length(paper_shaping: dict[str, Any]) -> None:
    log = paper_shaping["log"]
    last = log[-5:]
    assert all(r["answer_length"] < 16 for r in log), [r["answer_length"] for r in log]  # limit 32, target 7-8
    assert all(r["no_eos_rate"] <= 0.1 for r in last), [r["no_eos_rate"] for r in last]
    assert sum(r["accuracy"] for r in last) / 5 >= 0.85
    assert all(r["kl"] < 15.0 for r in log), [r["kl"] for r in log]  # nats per answer against the base (seen: 8.3)


def test_the_policy_adapter_changed_and_the_checkpoint_holds_it(paper_shaping: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    out = Path(paper_shaping["trainer"].config.out)
    checkpoint = out / f"checkpoint-{LEARNING['max_steps']}"
    policy = load_file(checkpoint / "policy" / "adapter_model.safetensors")
    lora_b = [v for k, v in policy.items() if "lora_B" in k]
    assert lora_b and max(float(v.abs().max()) for v in lora_b) > 1e-3  # B starts at 0
    assert any("lm_head" in k for k in policy)
    value = load_file(checkpoint / "value" / "adapter_model.safetensors")
    assert max(float(v.abs().max()) for k, v in value.items() if "lora_B" in k) > 1e-4
    assert float(torch.load(checkpoint / "value_head.pt")["weight"].abs().max()) > 0  # starts at 0
    for name in ("config.yaml", "train_log.jsonl", "trainer_state.pt", "processor"):
        assert (checkpoint / name).exists(), name


def test_without_the_length_bonus_beside_the_papers_setting(warm: Path, paper_shaping: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """The issue's comparison: the same run (seed, data) with length_bonus 0, reported beside the paper's. On
    answers of 7-8 tokens the bonus is worth 0.06 against 1 for the verdict: the two runs differ by trajectory
    noise (measured once: sampled 0.93 with the bonus, 0.85 without; greedy 1.0 both)."""
    plain = learn(warm, tmp_path / "out", length_bonus=0.0, eval_steps=8)
    assert plain["after"]["greedy"]["accuracy"] >= 0.9, plain["after"]
    assert plain["after"]["sampled"]["accuracy"] >= 0.75, plain["after"]
    lengths = [sum(r["answer_length"] for r in run["log"][-5:]) / 5 for run in (paper_shaping, plain)]
    print(json.dumps({"answer_length_last5": {"paper": lengths[0], "length_bonus_0": lengths[1]},
                      "after": {"paper": paper_shaping["after"], "length_bonus_0": plain["after"]},
                      "rollouts_to_90": {"paper": paper_shaping["rollouts_to_90"],
                                         "length_bonus_0": plain["rollouts_to_90"]}}))
