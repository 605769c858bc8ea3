"""Statistics over concepts: seeded, clustered bootstrap confidence intervals."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

Counts = Mapping[str, int]  # a uc_tasks.metrics summary: n, n_na, n_hit


def _rate(hit: int, answered: int) -> float | None:
    return hit / answered if answered else None


def paired_difference(a: Mapping[str, Counts], b: Mapping[str, Counts], concepts: list[str]) -> float | None:
    """Pooled hit rate (N/A excluded) of ``b`` minus that of ``a`` over ``concepts`` (repeats count)."""
    ra = _rate(sum(a[c]["n_hit"] for c in concepts), sum(a[c]["n"] - a[c]["n_na"] for c in concepts))
    rb = _rate(sum(b[c]["n_hit"] for c in concepts), sum(b[c]["n"] - b[c]["n_na"] for c in concepts))
    return None if ra is None or rb is None else rb - ra


def bootstrap_difference(
    a: Mapping[str, Counts],
    b: Mapping[str, Counts],
    concepts: list[str],
    iters: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """``b - a`` with a percentile CI from resampling concepts (both conditions keep their pairing)."""
    concepts = [c for c in concepts if c in a and c in b]
    point = paired_difference(a, b, concepts)
    rng = random.Random(seed)
    draws = []
    for _ in range(iters if concepts else 0):
        d = paired_difference(a, b, [rng.choice(concepts) for _ in concepts])
        if d is not None:
            draws.append(d)
    draws.sort()
    lo = hi = None
    if draws:
        lo = draws[int((1 - level) / 2 * (len(draws) - 1))]
        hi = draws[int((1 + level) / 2 * (len(draws) - 1))]
    return {
        "estimate": point,
        "ci_low": lo,
        "ci_high": hi,
        "level": level,
        "iters": iters,
        "seed": seed,
        "n_concepts": len(concepts),
        "resampled": "concepts",
    }
