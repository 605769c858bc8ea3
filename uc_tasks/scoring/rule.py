"""The default scorer: deterministic rules, no model, no network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from uc_tasks.scoring.base import Reading
from uc_tasks.scoring.parse_alignment import read_alignment
from uc_tasks.scoring.parse_perception import read_perception


class RuleScorer:
    """Reads answers with the rules in ``parse_alignment`` and ``parse_perception``."""

    name = "rule"
    version = "1"

    def settings(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version}

    def read_alignment(self, answers: Sequence[str]) -> list[Reading]:
        return [read_alignment(a) for a in answers]

    def read_perception(self, answers: Sequence[str], options: Sequence[Mapping[str, str]]) -> list[Reading]:
        if len(answers) != len(options):
            raise ValueError(f"{len(answers)} answers but {len(options)} option sets")
        return [read_perception(a, o) for a, o in zip(answers, options, strict=True)]
