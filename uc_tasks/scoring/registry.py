"""The scorers by name; ``get_scorer(name)`` builds one (``uc_tasks.scoring`` re-exports it).

- ``rule`` (default): deterministic rules (``parse_alignment``, ``parse_perception``), no model.
- ``classifier``: the authors' RoBERTa answer classifiers (``UNSAFECONCEPTS_CLASSIFIER_*``).
- ``judge``: an OpenAI-compatible model as judge (``UNSAFECONCEPTS_JUDGE_*``).

A scorer that cannot run (no weights, no endpoint, no key) raises: there is never a fallback to
another scorer.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from functools import lru_cache

from uc_tasks import settings
from uc_tasks.scoring.base import Scorer
from uc_tasks.scoring.rules.scorer import RuleScorer


def _lazy(module: str, cls: str) -> Callable[[], Scorer]:
    """Model-based scorers import torch or an HTTP client only when chosen."""

    def build() -> Scorer:
        return getattr(importlib.import_module(module), cls).from_env()

    return build


_SCORERS: dict[str, Callable[[], Scorer]] = {
    "rule": RuleScorer,
    "classifier": _lazy("uc_tasks.scoring.classifier", "ClassifierScorer"),
    "judge": _lazy("uc_tasks.scoring.judge", "JudgeScorer"),
}


def available_scorers() -> list[str]:
    return sorted(_SCORERS)


def get_scorer(name: str) -> Scorer:
    """The scorer called ``name``. An unknown name, or a scorer that cannot run, stops the run."""
    try:
        build = _SCORERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _SCORERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(available_scorers())}.{hint}") from None
    return build()


@lru_cache(maxsize=4)
def _chosen(name: str) -> Scorer:
    return get_scorer(name)


def chosen_scorer() -> Scorer:
    """The scorer ``UNSAFECONCEPTS_SCORER`` names (default ``rule``), built once per name; no fallback."""
    name = settings.current().scorer
    if name not in _SCORERS:
        try:
            get_scorer(name)
        except ValueError as e:
            raise ValueError(f"{settings.env_name('scorer')}: {e}") from None
    return _chosen(name)

