"""The default scorer: deterministic rules, no model, no network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from uc_tasks.scoring.base import Reading
from uc_tasks.scoring.rules.alignment import read_alignment
from uc_tasks.scoring.rules.perception import read_perception

# The rules are pure functions of the text, and short answers ("No.", "yes") recur constantly.
_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def _alignment(answer: str) -> Reading:
    return read_alignment(answer)


@lru_cache(maxsize=_CACHE)
def _perception(answer: str, options: tuple[tuple[str, str], ...]) -> Reading:
    return read_perception(answer, dict(options))


class RuleScorer:
    """Reads answers with the rules in ``parse_alignment`` and ``parse_perception``."""

    name = "rule"
    version = "2"  # 2: tuned on real LLaVA answers (tests/data/real_answers), readings carry certainty

    def settings(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version}

    def read_alignment(self, answers: Sequence[str]) -> list[Reading]:
        return [_alignment(a) for a in answers]

    def read_perception(self, answers: Sequence[str], options: Sequence[Mapping[str, str]]) -> list[Reading]:
        if len(answers) != len(options):
            raise ValueError(f"{len(answers)} answers but {len(options)} option sets")
        return [_perception(a, tuple(sorted(o.items()))) for a, o in zip(answers, options, strict=True)]
