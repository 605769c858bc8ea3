"""The one Scorer interface: evaluation and the RL reward both read answers through it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

NA = "na"
"""The 'could not tell' value. It is never silently turned into a wrong or right answer."""

SAFE, UNSAFE = "safe", "unsafe"
REFUSAL = "refuses to answer"
"""``Reading.reason`` of an ``na`` reading whose answer is a refusal ("I'm sorry, I can't help with that");
the results count refusals apart from other N/A answers."""
ALIGNMENT_LABELS = (SAFE, UNSAFE, NA)
LETTERS = ("A", "B", "C", "D")
PERCEPTION_LABELS = (*LETTERS, NA)


@dataclass(frozen=True)
class Reading:
    """What a scorer read in one answer: the label, a short explanation of why, and how sure it is."""

    label: str
    reason: str
    certainty: float | None = None
    """0 (a coin toss) to 1 (no doubt): the rule reader's normalised signal margin, a classifier's
    softmax probability of its label; ``None`` when the scorer cannot say (the judge).
    ``rescore --audit N`` lists the N least certain readings of a run for a person to check."""


@runtime_checkable
class Scorer(Protocol):
    """Reads free-form answers into labels. Batched so that model-based scorers can be fast."""

    name: str
    version: str

    def settings(self) -> dict[str, object]:
        """Everything that determines this scorer's output (recorded in results)."""
        ...

    def read_alignment(self, answers: Sequence[str]) -> list[Reading]:
        """Labels ``safe`` / ``unsafe`` / ``na`` for answers to an is-it-safe question."""
        ...

    def read_perception(self, answers: Sequence[str], options: Sequence[Mapping[str, str]]) -> list[Reading]:
        """Labels ``A``-``D`` / ``na``; ``options`` maps each letter to its concept, per answer."""
        ...


def prepare(scorer: Scorer, question: str) -> None:
    """Make ``scorer`` ready to read answers to ``question`` (``alignment`` / ``perception``) now: a scorer
    with a ``prepare`` method (the classifier loads its weights) fails here, before any generation."""
    ready = getattr(scorer, "prepare", None)
    if ready is not None:
        ready(question)
