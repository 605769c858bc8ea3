"""The PPO reward reads answers through the benchmark's scorer (never its own parser); the paper's classifier
reward is -CE of the classifier's probabilities, min-max normalised per batch. No model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import ppo_testbed  # noqa: F401  (puts the checkout on sys.path for uc_align)
import pytest

from uc_align.ppo.reward import VerdictReward, verdict_metrics
from uc_tasks.scoring import NA, SAFE, UNSAFE, Reading

ANSWERS = ["Yes, it is safe.", "No, it is not safe.", "No, it is not safe.", "Yes, it is safe. No", "zq xv"]
TARGETS = [SAFE, SAFE, UNSAFE, UNSAFE, SAFE]


def test_rule_reward_is_plus_one_minus_one_and_na_reward() -> None:
    scored = VerdictReward("rule").score(ANSWERS, TARGETS)
    # right, wrong, right, contradictory (N/A), unreadable (N/A)
    assert [s["label"] for s in scored.samples] == [SAFE, UNSAFE, UNSAFE, NA, NA]
    assert scored.scores == [1.0, -1.0, 1.0, -1.0, -1.0]
    assert VerdictReward("rule", na_reward=0.0).score(ANSWERS, TARGETS).scores == [1.0, -1.0, 1.0, 0.0, 0.0]


def test_metrics_beside_the_reward_count_na_as_wrong() -> None:
    m = verdict_metrics(VerdictReward("rule").score(ANSWERS, TARGETS).samples)
    assert m == {"accuracy": 2 / 5, "accuracy_safe": 1 / 3, "accuracy_unsafe": 1 / 2, "na_rate": 2 / 5}


def test_a_target_that_is_not_a_label_stops() -> None:
    with pytest.raises(ValueError, match="'maybe'"):
        VerdictReward("rule").score(["Yes."], ["maybe"])


class FakeClassifier:
    """The classifier scorer's interface with fixed probabilities (the real one needs the authors' weights)."""

    name, version = "classifier", "test"

    def __init__(self, probabilities: list[dict[str, float]]) -> None:
        self.table = probabilities

    def settings(self) -> dict[str, object]:
        return {}

    def probabilities(self, task: str, answers: Sequence[str]) -> list[dict[str, float]]:
        assert task == "alignment"
        return self.table[: len(answers)]

    def read_alignment(self, answers: Sequence[str]) -> list[Reading]:
        return [Reading(max(p, key=p.__getitem__), "fake", max(p.values())) for p in self.table[: len(answers)]]

    def read_perception(self, answers: Sequence[str], options: Sequence[object]) -> list[Reading]:
        raise NotImplementedError


def test_classifier_reward_is_min_max_normalised_log_probability_of_the_true_label() -> None:
    probs = [{SAFE: 0.8, UNSAFE: 0.1, NA: 0.1}, {SAFE: 0.5, UNSAFE: 0.25, NA: 0.25}, {SAFE: 0.2, UNSAFE: 0.4, NA: 0.4}]
    reward = VerdictReward("classifier", scorer=FakeClassifier(probs))  # type: ignore[arg-type]
    scored = reward.score(["a", "b", "c"], [SAFE, UNSAFE, UNSAFE])
    # log p(true): ln .8, ln .25, ln .4;  min ln .25, max ln .8
    low, high = math.log(0.25), math.log(0.8)
    assert scored.scores == pytest.approx([1.0, 0.0, (math.log(0.4) - low) / (high - low)])
    assert [s["label"] for s in scored.samples] == [SAFE, SAFE, UNSAFE]  # what the metrics count


def test_the_same_object_is_a_trl_reward_function() -> None:
    reward = VerdictReward("rule")
    conversational = [[{"role": "assistant", "content": a}] for a in ANSWERS]
    assert reward(prompts=[None] * 5, completions=conversational, target=TARGETS, concept=["c"] * 5) == \
        [1.0, -1.0, 1.0, -1.0, -1.0]
    assert reward(prompts=[None] * 5, completions=ANSWERS, target=TARGETS) == [1.0, -1.0, 1.0, -1.0, -1.0]
