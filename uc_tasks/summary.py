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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from uc_tasks import metrics, stats
from uc_tasks.answers import ERROR, PROVIDER_BLOCK
from uc_tasks.diversity import answer_diversity
from uc_tasks.perception_alignment import perception_alignment_table
from uc_tasks.scoring.base import NA
from uc_tasks.taxonomy import load_taxonomy

N_RESAMPLES = 1000

_CODE = {metrics.HIT: "h", metrics.MISS: "m", NA: "n", ERROR: "e", PROVIDER_BLOCK: "b"}
_DECODE: dict[str, dict[str, Any]] = {
    "h": {"label": "read", "hit": True},
    "m": {"label": "read", "hit": False},
    "n": {"label": NA, "hit": False},
    "e": {"label": None, "hit": False, "failed": ERROR},
    "b": {"label": None, "hit": False, "failed": PROVIDER_BLOCK},
}
PER_IMAGE_TASKS = ("perception", "image")


def task_summary(items: Sequence[Mapping[str, Any]], seed: int, n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Metrics, CIs, prompt sensitivity and diversity of one task's scored samples."""
    out = metrics.breakdown(items)
    out["ci"] = {
        name: stats.bootstrap_metric_ci(out["per_concept"], name, n_resamples=n_resamples, seed=seed)
        for name in metrics.METRICS
    }
    if "per_prompt" in out:
        out["prompt_sensitivity"] = stats.prompt_sensitivity(
            {p: s["accuracy"] for p, s in out["per_prompt"].items()},
            higher_is_better=metrics.METRICS["accuracy"].higher_is_better,
        )
    out["diversity"] = answer_diversity([it["answer"] for it in items if isinstance(it.get("answer"), str)], seed)
    if items and items[0].get("task") in PER_IMAGE_TASKS:
        per_image: dict[str, list[str]] = {}
        for it in items:
            entry = per_image.setdefault(str(it["row_id"]), [it["concept"], ""])
            entry[1] += _CODE[metrics.outcome(it)]
        out["per_image"] = per_image
    return out


def _rows(task: str, per_image: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """Scored samples rebuilt from a ``per_image`` record (enough for ``perception_alignment_table``)."""
    category = load_taxonomy().concept_category
    return [
        {"task": task, "row_id": int(rid), "concept": concept, "category": category[concept], **_DECODE[code]}
        for rid, (concept, codes) in per_image.items()
        for code in codes
    ]


def context_summary(by_task: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Context sensitivity per form, overall and per category with concept-bootstrap CIs; empty when no
    form has both its safe- and unsafe-context task."""
    out: dict[str, Any] = {}
    for form, suffix in (("image", ""), ("text", "_text")):
        safe, unsafe = by_task.get(f"context_safe{suffix}"), by_task.get(f"context_unsafe{suffix}")
        if safe and unsafe:
            out[form] = metrics.context_sensitivity(safe, unsafe)
    return out


def group_summary(by_task: Mapping[str, Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """Modality gap with CI and paired tests, and perception x alignment, from task summaries by kind."""
    image = by_task.get("image")
    text = by_task.get("text") or by_task.get("text_only")
    if image is None or text is None:
        raise ValueError(f"the modality gap needs an image and a text task; got {sorted(by_task)}")
    text_task = "text" if "text" in by_task else "text_only"
    gap = {**metrics.modality_gap(image, text), "text_task": text_task}
    gap["ci"] = stats.bootstrap_gap_ci(image["per_concept"], text["per_concept"], seed=seed)
    out: dict[str, Any] = {
        "modality_gap": gap,
        "modality_gap_test": stats.modality_gap_test(
            stats.scores_by_concept(image), stats.scores_by_concept(text), seed=seed
        ),
    }
    perception = by_task.get("perception")
    if perception and "per_image" in perception and "per_image" in image:
        rows = _rows("perception", perception["per_image"]) + _rows("image", image["per_image"])
        out["perception_x_alignment"] = perception_alignment_table(rows)
    return out
