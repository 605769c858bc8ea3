"""Answer scorers behind one interface; choose with ``get_scorer(name)``."""

from __future__ import annotations

import difflib

from uc_tasks.scoring.base import NA, SAFE, UNSAFE, Reading, Scorer
from uc_tasks.scoring.rule import RuleScorer

_SCORERS = {"rule": RuleScorer}


def available_scorers() -> list[str]:
    return sorted(_SCORERS)


def get_scorer(name: str) -> Scorer:
    """The scorer called ``name``. An unknown name stops the run: there is no fallback scorer."""
    try:
        return _SCORERS[name]()
    except KeyError:
        close = difflib.get_close_matches(name, _SCORERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown scorer {name!r}; available: {', '.join(available_scorers())}.{hint} "
            "Set UNSAFECONCEPTS_SCORER to one of them."
        ) from None


__all__ = ["NA", "SAFE", "UNSAFE", "Reading", "Scorer", "RuleScorer", "get_scorer", "available_scorers"]
