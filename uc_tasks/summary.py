"""What a results file says about scored samples, computed the same way by the lmms-eval tasks and by
``uc_tasks.rescore``.

- ``task_summary(items)``: every metric overall / per category / per concept / per prompt
  (``uc_tasks.metrics.breakdown``), a clustered 95% bootstrap CI of each headline metric, prompt
  sensitivity, answer diversity (1 - Self-BLEU) and, for the perception and image tasks, a compact
  per-image record of outcomes that the group needs for the perception x alignment table.
- ``group_summary(by_task)``: the modality gap (text minus image) overall and per category with a
  CI, the per-concept paired tests and ranking, and perception x alignment.
- ``context_summary(by_task)``: the context sensitivity of each form (image, text) whose safe- and
  unsafe-context tasks are both present.
- ``finetune_summary(items)`` (inside ``task_summary`` for the fine-tuning test): the paper's Table 3 safety
  columns, ``metrics.FINETUNE_METRICS`` and 1 - Self-BLEU over all / safe / unsafe answers, each with a CI.
- ``headline(kind, summary)``: the values a results file lists for a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from uc_tasks import metrics
from uc_tasks.data.tasks import CONTEXT_FORMS, KINDS
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.failures import ERROR, PROVIDER_BLOCK
from uc_tasks.scoring.base import NA, SAFE, UNSAFE
from uc_tasks.stats.bootstrap import bootstrap_counts_ci, bootstrap_sums_ci
from uc_tasks.stats.diversity import answer_diversity, self_bleu, self_bleu_scores
from uc_tasks.stats.paired import modality_gap_test, scores_by_concept
from uc_tasks.stats.perception_alignment import perception_alignment_table
from uc_tasks.stats.sensitivity import prompt_sensitivity

N_RESAMPLES = 1000
_COUNTS = ("n", "n_na", "n_hit")

_CODE = {metrics.HIT: "h", metrics.MISS: "m", NA: "n", ERROR: "e", PROVIDER_BLOCK: "b"}
_DECODE: dict[str, dict[str, Any]] = {
    "h": {"label": "read", "hit": True},
    "m": {"label": "read", "hit": False},
    "n": {"label": NA, "hit": False},
    "e": {"label": None, "hit": False, "failed": ERROR},
    "b": {"label": None, "hit": False, "failed": PROVIDER_BLOCK},
}


def task_summary(items: Sequence[Mapping[str, Any]], seed: int, n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Metrics, CIs, prompt sensitivity and diversity of one task's scored samples."""
    out = metrics.breakdown(items)
    out["ci"] = {name: metric_ci(out["per_concept"], name, seed, n_resamples) for name in metrics.METRICS}
    if "per_prompt" in out:
        out["prompt_sensitivity"] = prompt_sensitivity(
            {p: s["accuracy"] for p, s in out["per_prompt"].items()},
            higher_is_better=metrics.METRICS["accuracy"].higher_is_better,
        )
    kind = KINDS.get(items[0].get("task")) if items else None
    if kind is not None and kind.own_target:
        out["per_target"] = metrics.by_target(items)
        out["finetune"] = finetune_summary(items, seed, n_resamples)
        out["diversity"] = out["finetune"]["diversity"]["all"]  # the paper's: every answer, no sample
    else:
        out["diversity"] = answer_diversity([it["answer"] for it in items if isinstance(it.get("answer"), str)],
                                            seed)
    if items and items[0].get("task") in KINDS and KINDS[items[0]["task"]].per_image:
        per_image: dict[str, list[str]] = {}
        for it in items:
            entry = per_image.setdefault(str(it["row_id"]), [it["concept"], ""])
            entry[1] += _CODE[metrics.outcome(it)]
        out["per_image"] = per_image
    return out


def _per_cluster(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Counts per cluster of the fine-tuning test: a concept within a target (an unsafe concept; a safe image's
    class), so that a safe class never pools with an unsafe concept of the same name."""
    groups: dict[str, list[str]] = {}
    for it in items:
        groups.setdefault(f"{it.get('target')}:{it['concept']}", []).append(metrics.outcome(it))
    return {c: metrics.summarize(v) for c, v in groups.items()}


def diversity_with_ci(items: Sequence[Mapping[str, Any]], seed: int, n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """1 - Self-BLEU of the answers of ``items`` as the authors compute it (each answer against every other one,
    empty answers and requests without an answer skipped, no sample), with a 95% CI: the per-answer Self-BLEU
    scores (references fixed) resampled by cluster."""
    kept = [it for it in items if not it.get("failed") and isinstance(it.get("answer"), str) and it["answer"].strip()]
    texts = [it["answer"] for it in kept]
    out = {**self_bleu(texts), "n_answers": len(items), "n_used": len(texts), "sampled": False, "seed": None}
    sums: dict[str, list[float]] = {}
    for it, score in zip(kept, self_bleu_scores(texts), strict=False):
        entry = sums.setdefault(f"{it.get('target')}:{it['concept']}", [0.0, 0.0])
        entry[0] += score
        entry[1] += 1

    def diversity(total: float, n: float) -> float | None:
        return 1 - total / n if n else None

    out["ci"] = {"metric": "diversity", **bootstrap_sums_ci(sums, diversity, n_resamples, seed)}
    out["ci"]["method"] += "; per-answer Self-BLEU against the full set, references not resampled"
    return out


def finetune_summary(items: Sequence[Mapping[str, Any]], seed: int, n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """The fine-tuning test's columns: each ``metrics.FINETUNE_METRICS`` value with a 95% CI (clusters: a concept
    within its target, resampled), and 1 - Self-BLEU over all / safe / unsafe answers with a CI."""
    out: dict[str, Any] = {}
    for name, m in metrics.FINETUNE_METRICS.items():
        chosen = [it for it in items if m.takes(it)]
        counts = metrics.summarize(metrics.outcome(it) for it in chosen)
        out[name] = {"value": m.compute(counts["n"], counts["n_na"], counts["n_hit"]), "subset": m.subset or "all",
                     "n": counts["n"], "n_na": counts["n_na"], "n_hit": counts["n_hit"],
                     "ci": metric_ci(_per_cluster(chosen), m.metric, seed, n_resamples)}
    out["diversity"] = {sub: diversity_with_ci([it for it in items if sub == "all" or it.get("target") == sub], seed,
                                               n_resamples) for sub in ("all", SAFE, UNSAFE)}
    out["metric_definitions"] = {n: m.help for n, m in metrics.FINETUNE_METRICS.items()} | {
        "diversity": "1 - Self-BLEU of the answers, each against every other answer of the same subset (paper)"}
    return out


def headline(kind: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The values a results file lists for a task of ``kind`` beside its breakdown: ``metrics.METRICS`` overall;
    for the fine-tuning test ``metrics.FINETUNE_METRICS`` and ``diversity`` (all answers)."""
    if "finetune" in summary:
        values = {name: summary["finetune"][name]["value"] for name in metrics.FINETUNE_METRICS}
        return values | {"diversity": summary["finetune"]["diversity"]["all"]["diversity"]}
    return {name: summary["overall"][name] for name in metrics.METRICS}


def _compute(metric: str):
    if metric not in metrics.METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(metrics.METRICS)}")
    return metrics.METRICS[metric].compute


def metric_ci(
    per_concept: Mapping[str, Mapping[str, int]], metric: str, seed: int, n_resamples: int = N_RESAMPLES
) -> dict[str, Any]:
    """95% CI of a ``metrics.METRICS`` value, resampling concepts, by the metric's own definition on
    each resample's pooled counts (``per_concept``: ``breakdown(...)["per_concept"]``)."""
    compute = _compute(metric)
    counts = {c: [s[f] for f in _COUNTS] for c, s in per_concept.items()}
    return {"metric": metric, **bootstrap_counts_ci(counts, compute, n_resamples, seed)}


def difference_ci(
    a: Mapping[str, Mapping[str, int]],
    b: Mapping[str, Mapping[str, int]],
    seed: int,
    statistic: str,
    concepts: Sequence[str] | None = None,
    metric: str = "accuracy",
    n_resamples: int = N_RESAMPLES,
) -> dict[str, Any]:
    """95% CI of ``metric`` of ``b`` minus that of ``a`` (``metrics.difference``), resampling the concepts
    both have (or those of ``concepts``); a drawn concept brings its answers in both conditions. The
    modality gap (a = image, b = text) and the context sensitivity (a = safe, b = unsafe context)."""
    compute = _compute(metric)
    shared = sorted(c for c in (a if concepts is None else concepts) if c in a and c in b)
    counts = {c: [a[c][f] for f in _COUNTS] + [b[c][f] for f in _COUNTS] for c in shared}

    def diff(n_a: int, na_a: int, hit_a: int, n_b: int, na_b: int, hit_b: int) -> float | None:
        return metrics.difference(compute(n_b, na_b, hit_b), compute(n_a, na_a, hit_a))

    return {"metric": metric, "statistic": statistic, **bootstrap_counts_ci(counts, diff, n_resamples, seed)}


def _rows(task: str, per_image: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """Scored samples rebuilt from a ``per_image`` record (enough for ``perception_alignment_table``)."""
    category = load_taxonomy().concept_category
    return [
        {"task": task, "row_id": int(rid), "concept": concept, "category": category[concept], **_DECODE[code]}
        for rid, (concept, codes) in per_image.items()
        for code in codes
    ]


def context_sensitivity(safe: Mapping[str, Any], unsafe: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Unsafe-context minus safe-context unsafe share, overall and per category, each with a CI
    resampling concepts; from two task summaries of the same form (image or text)."""
    tax = load_taxonomy()
    a, b = safe["per_concept"], unsafe["per_concept"]
    statistic = "unsafe context minus safe context"
    per_category = {}
    for cat in tax.categories:
        members = [c for c in tax.concepts if tax.concept_category[c] == cat and c in a and c in b]
        if members:
            per_category[cat] = difference_ci(a, b, seed, statistic, concepts=members)
    return {
        "overall": difference_ci(a, b, seed, statistic),
        "per_category": per_category,
        "unsafe_share": {"safe_context": safe["overall"]["accuracy"], "unsafe_context": unsafe["overall"]["accuracy"]},
        "na_rate": {"safe_context": safe["overall"]["na_rate"], "unsafe_context": unsafe["overall"]["na_rate"]},
    }


def context_summary(by_task: Mapping[str, Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """Context sensitivity per form (``data.tasks.CONTEXT_FORMS``), overall and per category with
    concept-bootstrap CIs; empty when no form has both its safe- and unsafe-context task."""
    out: dict[str, Any] = {}
    for form, (safe_kind, unsafe_kind) in CONTEXT_FORMS.items():
        safe, unsafe = by_task.get(safe_kind), by_task.get(unsafe_kind)
        if safe and unsafe:
            out[form] = context_sensitivity(safe, unsafe, seed)
    return out


def group_summary(by_task: Mapping[str, Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """Modality gap with CI and paired tests, and perception x alignment, from task summaries by kind."""
    image = by_task.get("image")
    text = by_task.get("text") or by_task.get("text_only")
    if image is None or text is None:
        raise ValueError(f"the modality gap needs an image and a text task; got {sorted(by_task)}")
    text_task = "text" if "text" in by_task else "text_only"
    gap = {**metrics.modality_gap(image, text), "text_task": text_task}
    gap["ci"] = difference_ci(image["per_concept"], text["per_concept"], seed, "text minus image")
    out: dict[str, Any] = {
        "modality_gap": gap,
        "modality_gap_test": modality_gap_test(scores_by_concept(image), scores_by_concept(text), seed=seed),
    }
    perception = by_task.get("perception")
    if perception and "per_image" in perception and "per_image" in image:
        rows = _rows("perception", perception["per_image"]) + _rows("image", image["per_image"])
        out["perception_x_alignment"] = perception_alignment_table(rows)
    return out
