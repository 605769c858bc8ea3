"""What the report shows, taken from the results summaries a run wrote (``uc_tasks.runs.load_summaries``).

Values are read as written. The few the results hold only as counts are computed by
``uc_tasks.summary`` exactly as the tasks compute theirs: a category's CI (``metric_ci`` over that
category's concepts, the run's own seed and resample count) and the change between two runs
(``difference_ci``, concepts resampled with their answers in both runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uc_tasks.data.options import DEFAULT_SEED
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.summary import N_RESAMPLES, difference_ci, metric_ci

ALIGNMENT_TASKS = ("image", "text", "text_only")
HEADLINE_TASKS = ("perception", "image", "text", "text_only")
TITLES = {"perception": "Perception (image)", "image": "Image alignment", "text": "Text alignment",
          "text_only": "Text alignment, no image", "context_safe": "Safe context (image)",
          "context_unsafe": "Unsafe context (image)", "context_safe_text": "Safe context (text)",
          "context_unsafe_text": "Unsafe context (text)"}


def bootstrap_of(breakdown: Mapping[str, Any]) -> tuple[int, int]:
    """(seed, resamples) the run's own CIs used."""
    ci = (breakdown.get("ci") or {}).get("accuracy") or {}
    return int(ci.get("seed", DEFAULT_SEED)), int(ci.get("n_resamples", N_RESAMPLES))


def estimate(ci: Mapping[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    if not ci:
        return (None, None, None)
    return (ci.get("estimate"), ci.get("ci_low"), ci.get("ci_high"))


def category_cis(breakdown: Mapping[str, Any], metric: str = "accuracy") -> dict[str, dict[str, Any]]:
    """Per category present, the CI of ``metric`` resampling that category's concepts; 'overall' is the
    CI the run wrote."""
    tax = load_taxonomy()
    seed, n = bootstrap_of(breakdown)
    per_concept = breakdown.get("per_concept") or {}
    out: dict[str, dict[str, Any]] = {}
    for cat in tax.categories:
        members = {c: s for c, s in per_concept.items() if tax.concept_category.get(c) == cat}
        if members:
            out[cat] = metric_ci(members, metric, seed, n)
    out["overall"] = (breakdown.get("ci") or {}).get(metric) or {}
    return out


def change(before: Mapping[str, Any], after: Mapping[str, Any], metric: str = "accuracy") -> dict[str, Any]:
    """``metric`` of ``after`` minus ``before`` with a 95% CI resampling the concepts both runs have."""
    seed, n = bootstrap_of(before)
    return difference_ci(before["per_concept"], after["per_concept"], seed, "after minus before",
                         metric=metric, n_resamples=n)


def gap_rows(group: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The group's per-concept ranking (largest gap first) with each concept's category."""
    category = load_taxonomy().concept_category
    ranking = (group.get("modality_gap_test") or {}).get("ranking") or []
    return [{**r, "category": category.get(r["concept"], "?")} for r in ranking]


def answer_counts(breakdown: Mapping[str, Any]) -> dict[str, int]:
    """A task's requests by what became of them: read as a hit, read as a miss, N/A, no answer (per kind)."""
    o = breakdown["overall"]
    counts = {"hit": o["n_hit"], "miss": o["n"] - o["n_na"] - o["n_hit"], "N/A": o["n_na"]}
    for kind, n in (o.get("failed") or {}).items():
        counts[f"no answer: {kind}"] = n
    return counts


def provenance_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What produced a run, as recorded: scorer, prompts, data, split, options, seed, versions, commit."""
    tasks = summary["tasks"]
    first = next(iter(tasks.values()))
    prov = summary.get("provenance") or {}
    rows = [("results file", summary["path"]), ("format", summary["format"]),
            ("model", summary.get("model") or "not recorded"), ("date", summary.get("date") or "not recorded")]
    scorer = summary.get("scorer") or {}
    rows.append(("scorer", ", ".join(f"{k}={v}" for k, v in scorer.items()) or "not recorded"))
    prompts = prov.get("prompts") or {}
    rows.append(("prompt version", f"{prompts.get('version', '?')} (sha256 {prompts.get('sha256', '?')})"
                 if prompts else "not recorded"))
    data = first.get("data")
    if data:
        src = data.get("source") or {}
        rows.append(("data source", f"{src.get('kind')}: {src.get('location')} @ revision "
                                    f"{src.get('revision') or 'default (not pinned)'}"))
        rows.append(("data rows", f"{data.get('n_rows')} used, {data.get('n_skipped')} skipped"))
    else:
        rows.append(("data source", "not recorded in this file (a rescored file: see the run it was read from)"))
    split = first.get("split")
    if split:
        rows.append(("split", f"{split.get('name')} (seed {split.get('seed')}, {split.get('n_rows')} rows)"))
    options = (tasks.get("perception") or {}).get("options")
    if options:
        rows.append(("perception options", ", ".join(f"{k}={v}" for k, v in options.items())))
    seed, n = bootstrap_of(first)
    rows.append(("bootstrap", f"seed {seed}, {n} resamples of concepts, 95% percentile CI"))
    packages = prov.get("packages") or {}
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in packages.items() if v) or "not recorded"))
    git = prov.get("git") or {}
    rows.append(("commit", f"{git.get('commit')}{' (uncommitted changes)' if git.get('dirty') else ''}"
                 if git else "not recorded (not a git checkout)"))
    return rows
