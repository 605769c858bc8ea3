"""The 9 categories and 75 unsafe concepts of UnsafeConcepts, with per-concept image counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Taxonomy:
    """Categories, concepts (exact strings, odd capitalisation kept) and extra distractors."""

    categories: tuple[str, ...]
    concept_category: dict[str, str]
    concept_count: dict[str, int]
    extra_distractors: tuple[str, ...]

    @property
    def concepts(self) -> tuple[str, ...]:
        return tuple(self.concept_category)

    @property
    def n_images(self) -> int:
        return sum(self.concept_count.values())

    def category_of(self, concept: str) -> str:
        try:
            return self.concept_category[concept]
        except KeyError:
            raise ValueError(
                f"unknown concept {concept!r}: not one of the 75 UnsafeConcepts concepts "
                "(check the dataset's unsafe_concept column against uc_tasks/data/taxonomy.json)"
            ) from None


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    """Read the taxonomy shipped with the package."""
    raw = json.loads(resources.files("uc_tasks.data").joinpath("taxonomy.json").read_text(encoding="utf-8"))
    concept_category: dict[str, str] = {}
    concept_count: dict[str, int] = {}
    for cat in raw["categories"]:
        for c in cat["concepts"]:
            concept_category[c["name"]] = cat["name"]
            concept_count[c["name"]] = int(c["n_images"])
    return Taxonomy(
        categories=tuple(cat["name"] for cat in raw["categories"]),
        concept_category=concept_category,
        concept_count=concept_count,
        extra_distractors=tuple(raw["extra_distractors"]),
    )
