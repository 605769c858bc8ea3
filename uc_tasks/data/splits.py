"""The authors' fine-tuning split: per concept, shuffle with seed 2024, first int(0.8 n) rows train.

On the full dataset this gives 1,222 training and 345 test images (the paper, Fine-tuning data).
``UNSAFECONCEPTS_SPLIT`` selects rows for every task: ``all`` (default), ``finetune_test`` or
``finetune_train``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from uc_tasks import settings

ENV_SPLIT = settings.env_name("split")
SPLITS = ("all", "finetune_train", "finetune_test")
SPLIT_SEED = 2024
TRAIN_FRACTION = 0.8


def finetune_split(concepts: Sequence[str], seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Row positions of the training and test parts, each sorted."""
    by_concept: dict[str, list[int]] = {}
    for i, c in enumerate(concepts):
        by_concept.setdefault(c, []).append(i)
    train, test = [], []
    for rows in by_concept.values():
        rows = list(rows)
        random.Random(seed).shuffle(rows)
        k = int(TRAIN_FRACTION * len(rows))
        train += rows[:k]
        test += rows[k:]
    return sorted(train), sorted(test)


def split_from_env() -> str:
    name = settings.current().split
    if name not in SPLITS:
        raise ValueError(f"{ENV_SPLIT}={name!r} is not one of {', '.join(SPLITS)}")
    return name


def select_split(concepts: Sequence[str], name: str) -> list[int] | None:
    """Row positions for split ``name`` (None for ``all``)."""
    if name == "all":
        return None
    train, test = finetune_split(concepts)
    return train if name == "finetune_train" else test
