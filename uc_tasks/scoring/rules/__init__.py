"""The rule scorer: deterministic readers of alignment answers (``alignment``, vocabulary in
``alignment_vocab``) and of multiple-choice answers (``perception``), behind ``RuleScorer``."""

from uc_tasks.scoring.rules.scorer import RuleScorer

__all__ = ["RuleScorer"]
