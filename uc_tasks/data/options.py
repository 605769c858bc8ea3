"""Perception options: a seeded sampler with the paper's constraints, or the authors' option file.

Sampler constraints (the paper; the authors did not release their sampler): 3 distractors drawn
from the 75 concepts plus 12 extra concepts, none from the true concept's category; the correct
letter is balanced over A-D (counts differ by at most one).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uc_tasks import settings
from uc_tasks.data.sources import DataError
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.prompts import render
from uc_tasks.scoring.base import LETTERS
from uc_tasks.scoring.rules.perception import parse_options

ENV_OPTIONS = settings.env_name("perception_options")
ENV_SEED = settings.env_name("seed")
DEFAULT_SEED = int(settings.Settings().seed)


def seed_from_env() -> int:
    raw = settings.current().seed
    try:
        return int(raw)
    except ValueError:
        raise DataError(f"{ENV_SEED}={raw!r} is not an integer seed") from None


def sample_options(concepts: Sequence[str], seed: int) -> list[dict[str, Any]]:
    """One option set per row: ``{"options": {"A": ..}, "correct_option": "B", "option_str": ..}``."""
    tax = load_taxonomy()
    rng = random.Random(seed)
    positions = [i % 4 for i in range(len(concepts))]
    rng.shuffle(positions)
    pool_all = [*tax.concepts, *tax.extra_distractors]
    pools = {cat: [c for c in pool_all if tax.concept_category.get(c) != cat] for cat in tax.categories}
    out = []
    for concept, pos in zip(concepts, positions, strict=True):
        chosen = rng.sample(pools[tax.category_of(concept)], 3)
        chosen.insert(pos, concept)
        options = dict(zip(LETTERS, chosen, strict=True))
        out.append(
            {
                "options": options,
                "correct_option": LETTERS[pos],
                "option_str": render("perception/option_list", options=list(options.items())),
            }
        )
    return out


def load_option_file(path: str | Path, concepts: Sequence[str], row_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Options from the authors' perception_metadata.jsonl, matched to dataset rows by row index."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{ENV_OPTIONS}={path}: file not found; give the authors' perception_metadata.jsonl")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    out = []
    for concept, row_id in zip(concepts, row_ids, strict=True):
        if row_id >= len(lines):
            raise DataError(
                f"{path}: has {len(lines)} rows but the dataset has row {row_id}; "
                "the option file must cover the dataset row by row"
            )
        try:
            rec = json.loads(lines[row_id])
            option_str, correct = rec["option_str"], rec["correct_option"]
            file_concept = rec["unsafe_concept"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{row_id + 1}: needs unsafe_concept, option_str and correct_option ({e})") from None
        if file_concept != concept:
            raise DataError(
                f"{path}:{row_id + 1}: options are for {file_concept!r} but dataset row {row_id} "
                f"shows {concept!r}; the option file must match the dataset row by row"
            )
        try:
            options = parse_options(option_str)
        except ValueError as e:
            raise DataError(f"{path}:{row_id + 1}: {e}") from None
        if correct not in LETTERS or options[correct] != concept:
            raise DataError(f"{path}:{row_id + 1}: correct_option {correct!r} is not the option {concept!r}")
        out.append({"options": options, "correct_option": correct, "option_str": option_str})
    return out


def options_for(concepts: Sequence[str], row_ids: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Option sets for these rows and a record of how they were made (for the results)."""
    path = settings.current().perception_options
    if path:
        return load_option_file(path, concepts, row_ids), {"kind": "file", "path": str(Path(path).resolve())}
    seed = seed_from_env()
    return sample_options(concepts, seed), {"kind": "sampled", "seed": seed}
