"""Reference bootstraps used only by the tests: a slow per-resample loop over pooled samples, and a
ratio of sums, both on the draws of ``uc_tasks.stats.bootstrap`` (the one bootstrap of the results).
The tests check that the package's vectorised ``bootstrap_counts_ci`` gives their numbers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from uc_tasks.stats.bootstrap import _check_bootstrap, _defined, _draws, _interval, _multiplicity


def bootstrap_ci(
    samples_by_cluster: Mapping[str, Sequence[Any]],
    statistic: Callable[[list[Any]], float | None],
    n_resamples: int = 1000,
    seed: int = 2024,
    level: float = 0.95,
) -> dict[str, Any]:
    """CI of ``statistic(pooled samples)`` by resampling clusters with replacement, one resample at a time;
    a resample whose statistic is undefined is skipped."""
    _check_bootstrap(n_resamples, level)
    groups = [list(samples_by_cluster[k]) for k in sorted(samples_by_cluster)]
    estimate = statistic([s for g in groups for s in g])
    values: list[float] = []
    if groups:
        for row in _draws(len(groups), n_resamples, seed):
            v = statistic([s for j in row for s in groups[j]])
            if _defined(v):
                values.append(v)  # type: ignore[arg-type]
    return _interval(estimate if _defined(estimate) else None, values, len(groups), n_resamples, seed, level)


def bootstrap_ratio_ci(
    num_by_cluster: Mapping[str, float],
    den_by_cluster: Mapping[str, float],
    n_resamples: int = 1000,
    seed: int = 2024,
    level: float = 0.95,
) -> dict[str, Any]:
    """CI of the pooled ratio sum(num) / sum(den); a resample with a zero denominator is skipped."""
    _check_bootstrap(n_resamples, level)
    if set(num_by_cluster) != set(den_by_cluster):
        odd = sorted(set(num_by_cluster) ^ set(den_by_cluster))[:3]
        raise ValueError(f"numerator and denominator need the same clusters; only in one: {odd}")
    keys = sorted(num_by_cluster)
    num = np.array([num_by_cluster[k] for k in keys])
    den = np.array([den_by_cluster[k] for k in keys])
    estimate = float(num.sum() / den.sum()) if keys and den.sum() else None
    values = np.empty(0)
    if keys:
        times = _multiplicity(len(keys), n_resamples, seed)
        nums, dens = times @ num, times @ den
        ok = dens != 0
        values = nums[ok] / dens[ok]
    return _interval(estimate, values, len(keys), n_resamples, seed, level)
