"""The authors' fine-tuning split, exactly as their code draws it, and the prompts of its images.

Unsafe images: ``random.seed(2024)`` once, then the concepts in sorted (byte) order of the concept
strings, each concept's images (in dataset order) shuffled in turn with the random state carried
over from concept to concept, the first ``int(0.8 n)`` of each shuffled list for training. On the
full dataset: 1,222 training and 345 test images (the paper, Fine-tuning data).

Safe images: reseeded with 2024, the whole set shuffled, 80/20, each part cut to the unsafe counts
(``[:1222]`` train, ``[:345]`` test on the full data).

Prompts: each training image gets ``random.sample(prompts, 1)``; the test set's prompt per image is
``np.random.seed(42); np.random.choice(5, n)`` over the test list (unsafe test images, then safe ones).

``UNSAFECONCEPTS_SPLIT`` selects rows for every benchmark task: ``all`` (default), ``finetune_test``
or ``finetune_train``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from uc_tasks import settings

ENV_SPLIT = settings.env_name("split")
SPLITS = ("all", "finetune_train", "finetune_test")
SPLIT_SEED = 2024
TRAIN_FRACTION = 0.8
TEST_PROMPT_SEED = 42
N_PROMPTS = 5


def authors_split(concepts: Sequence[str], seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Row positions of the training and test parts in the order the authors' code lists them (concept by
    concept in sorted order, each concept's rows shuffled); ``concepts[i]`` is row i's concept."""
    by_concept: dict[str, list[int]] = {}
    for i, c in enumerate(concepts):
        by_concept.setdefault(c, []).append(i)
    rng = random.Random(seed)  # one stream for all concepts: random.seed(seed) once, as the authors do
    train: list[int] = []
    test: list[int] = []
    for concept in sorted(by_concept):  # str order is code point order, the same as UTF-8 byte order
        rows = list(by_concept[concept])
        rng.shuffle(rows)
        k = int(TRAIN_FRACTION * len(rows))
        train += rows[:k]
        test += rows[k:]
    return train, test


def finetune_split(concepts: Sequence[str], seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Row positions of the training and test parts (:func:`authors_split`), each sorted."""
    train, test = authors_split(concepts, seed)
    return sorted(train), sorted(test)


def safe_split(n_safe: int, n_train: int, n_test: int, seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Safe-image positions of the training and test parts, in shuffled order: all ``n_safe`` shuffled after
    reseeding with ``seed``, 80/20, cut to ``n_train`` / ``n_test`` (the unsafe counts). Raises ValueError when
    the set is too small to give those counts (the paper balances safe and unsafe images)."""
    order = list(range(n_safe))
    random.Random(seed).shuffle(order)
    k = int(TRAIN_FRACTION * n_safe)
    train, test = order[:k][:n_train], order[k:][:n_test]
    if len(train) < n_train or len(test) < n_test:
        need = max(-(-n_train * 5 // 4), 5 * n_test)
        raise ValueError(f"the safe images are too few: {n_safe} give {len(train)} train / {len(test)} test after the "
                         f"80/20 split, fewer than the {n_train} / {n_test} unsafe images they balance; use a safe set "
                         f"of at least {need} images")
    return train, test


def training_prompt_ids(n: int, seed: int = SPLIT_SEED) -> list[int]:
    """Prompt numbers (1..5) of ``n`` training images: ``random.sample(prompts, 1)`` per image from one stream
    seeded with ``seed`` (the authors' draw; their code does not record the state it draws from)."""
    rng = random.Random(seed)
    prompts = list(range(1, N_PROMPTS + 1))
    return [rng.sample(prompts, 1)[0] for _ in range(n)]


def heldout_prompt_ids(n: int, seed: int = TEST_PROMPT_SEED) -> list[int]:
    """Prompt numbers (1..5) of ``n`` test images: ``np.random.seed(42); np.random.choice(5, n)`` plus one."""
    import numpy as np

    return [int(p) + 1 for p in np.random.RandomState(seed).choice(N_PROMPTS, n)]


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
