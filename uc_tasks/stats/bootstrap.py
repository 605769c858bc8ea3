"""The one bootstrap of the results files: a clustered (concept) percentile bootstrap of any
statistic of pooled counts, vectorised with numpy, deterministic for a given seed.

A leaf: the statistic to compute is an argument (``uc_tasks.summary`` passes the metric definitions
of ``uc_tasks.metrics``). Undefined values are ``None``, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

BOOTSTRAP_METHOD = (
    "clustered percentile bootstrap: clusters (concepts) in sorted order, resample r draws row r of "
    "numpy.random.default_rng(seed).integers(0, k, size=(n_resamples, k)) (the draws of scipy.stats.bootstrap), "
    "the statistic is recomputed on the pooled samples of the drawn clusters (repeats count), resamples whose "
    "statistic is undefined are skipped, CI = linear-interpolated quantiles (1-level)/2 and (1+level)/2 of the rest"
)


def _check_bootstrap(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}: need at least 1 resample (1000 or more for a CI)")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: the confidence level must lie strictly between 0 and 1, e.g. 0.95")


def _draws(n_clusters: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_clusters) array: row r lists the clusters that resample r draws."""
    return np.random.default_rng(seed).integers(0, n_clusters, size=(n_resamples, n_clusters))


def _multiplicity(n_clusters: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_clusters) array: how many times resample r drew cluster j."""
    flat = _draws(n_clusters, n_resamples, seed) + (np.arange(n_resamples) * n_clusters)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n_clusters).reshape(n_resamples, n_clusters)


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _interval(
    estimate: float | None, values: Sequence[float] | np.ndarray, n_clusters: int, n_resamples: int, seed: int,
    level: float,
) -> dict[str, Any]:
    kept = np.asarray(values, dtype=float)
    lo = hi = None
    if kept.size:
        lo, hi = (float(q) for q in np.quantile(kept, [(1 - level) / 2, (1 + level) / 2]))
    return {
        "estimate": None if estimate is None else float(estimate),
        "ci_low": lo,
        "ci_high": hi,
        "level": level,
        "n_resamples": n_resamples,
        "n_skipped": n_resamples - int(kept.size),
        "seed": seed,
        "n_clusters": n_clusters,
        "standard_error": float(np.std(kept, ddof=1)) if kept.size > 1 else None,
        "method": BOOTSTRAP_METHOD,
    }


def bootstrap_counts_ci(
    counts_by_cluster: Mapping[str, Sequence[int]],
    statistic: Callable[..., float | None],
    n_resamples: int = 1000,
    seed: int = 2024,
    level: float = 0.95,
) -> dict[str, Any]:
    """``bootstrap_ci`` for a statistic of pooled counts: each cluster holds a vector of counts, each
    resample's totals are summed with numpy and passed as ``statistic(*totals)`` (plain ints)."""
    return _pooled_ci(counts_by_cluster, statistic, n_resamples, seed, level, np.int64, int)


def bootstrap_sums_ci(
    sums_by_cluster: Mapping[str, Sequence[float]],
    statistic: Callable[..., float | None],
    n_resamples: int = 1000,
    seed: int = 2024,
    level: float = 0.95,
) -> dict[str, Any]:
    """:func:`bootstrap_counts_ci` for real-valued sums (e.g. per cluster the sum of per-answer scores and the
    number of answers): the same draws, totals passed as plain floats."""
    return _pooled_ci(sums_by_cluster, statistic, n_resamples, seed, level, np.float64, float)


def _pooled_ci(by_cluster: Mapping[str, Sequence[Any]], statistic: Callable[..., float | None], n_resamples: int,
               seed: int, level: float, dtype: Any, cast: Callable[[Any], Any]) -> dict[str, Any]:
    _check_bootstrap(n_resamples, level)
    keys = sorted(by_cluster)
    rows = [list(by_cluster[k]) for k in keys]
    if len({len(r) for r in rows}) > 1 or (rows and not rows[0]):
        raise ValueError("counts_by_cluster: every cluster needs a count vector of the same non-zero length")
    table = np.array(rows, dtype=dtype)
    estimate = statistic(*(cast(t) for t in table.sum(axis=0))) if keys else None
    values: list[float] = []
    if keys:
        for totals in _multiplicity(len(keys), n_resamples, seed) @ table:
            v = statistic(*(cast(t) for t in totals))
            if _defined(v):
                values.append(v)  # type: ignore[arg-type]
    return _interval(estimate if _defined(estimate) else None, values, len(keys), n_resamples, seed, level)
