"""The outcome of one scored sample: ``hit``, ``miss``, ``na`` (the scorer could not tell), or the
failure kind of a request that got no answer (``uc_tasks.failures``). Metrics and statistics are
computed over outcomes; a failure is counted, never scored.

A scored sample is a dict with ``label`` (the scorer's reading), ``hit`` (the reading is the right
one) and, for a request without an answer, ``failed`` (its kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uc_tasks.failures import FAILURE_KINDS
from uc_tasks.scoring.base import NA

HIT, MISS = "hit", "miss"

__all__ = ["HIT", "MISS", "NA", "FAILURE_KINDS", "Outcome", "outcome"]


class Outcome(str):
    """An outcome code that remembers its cluster (the concept), so that a per-sample list of outcomes
    can be bootstrapped by concept; it is the plain code everywhere else (JSON, comparisons)."""

    cluster: str

    def __new__(cls, code: str, cluster: str = "") -> Outcome:
        self = super().__new__(cls, code)
        self.cluster = cluster
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # pickles across processes with its cluster
        return str(self), self.cluster


def outcome(sample: Mapping[str, Any]) -> str:
    """The failure kind when there was no answer; ``na`` when the scorer could not tell; else hit/miss."""
    if sample.get("failed"):
        return str(sample["failed"])
    if sample["label"] == NA:
        return NA
    return HIT if sample["hit"] else MISS
