"""Answer scorers behind one interface (``base.Scorer``), chosen by name (``registry.get_scorer``).

- ``rule`` (default): deterministic rules (``rules/``), no model.
- ``classifier``: the authors' RoBERTa answer classifiers (``classifier``).
- ``judge``: an OpenAI-compatible model as judge (``judge``).

A scorer that cannot run (no weights, no endpoint, no key) raises: there is never a fallback to
another scorer. ``score_sample`` turns one answer into the scored sample of a task kind; the tasks,
rescore and the RL reward all use it.
"""

from uc_tasks.scoring.base import NA, SAFE, UNSAFE, Reading, Scorer
from uc_tasks.scoring.registry import available_scorers, get_scorer
from uc_tasks.scoring.rules import RuleScorer

__all__ = ["NA", "SAFE", "UNSAFE", "Reading", "Scorer", "RuleScorer", "get_scorer", "available_scorers"]
