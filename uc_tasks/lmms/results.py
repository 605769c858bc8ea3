"""Per-sample scoring and the aggregations lmms-eval writes into the results JSON.

Each task reports ``accuracy`` (N/A excluded), ``accuracy_strict`` (N/A wrong), ``na_rate`` and
``breakdown`` (per category, per concept, per prompt, plus everything that produced the numbers).
A task that feeds a group statistic (``uc_tasks.data.tasks``) also reports that metric; its value
there is only the group's input (the task's own score, kept out of the console table); the group
reports the statistic itself (``modality_gap``: text minus image; ``image_sensitivity`` /
``text_sensitivity``: unsafe minus safe context) and, per category, under ``breakdown``.
Per sample, the headline metrics hold only the outcome (``hit``/``miss``/``na``) and ``breakdown``
holds the full reading, so the samples file stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from uc_tasks import metrics
from uc_tasks.data.options import seed_from_env
from uc_tasks.data.sources import DataError
from uc_tasks.data.tasks import KINDS
from uc_tasks.errors import stop
from uc_tasks.lmms.docs import RUN_STATE, doc_record, scorer
from uc_tasks.outcomes import Outcome
from uc_tasks.provenance import provenance
from uc_tasks.scoring.samples import score_sample
from uc_tasks.summary import context_summary, group_summary, metric_ci, task_summary


class Detail(dict):
    """A nested result that goes into the results JSON but not into lmms-eval's console table.

    lmms-eval's table leaves out values whose ``len()`` is 0; ``json`` reads the real items (it
    checks truth, not length, and ``__bool__`` is True), so the JSON keeps the full content.
    """

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True


def process_results(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """Outcome codes for the headline metrics (and the kind's group metric), the scored sample for
    ``breakdown``. A scorer that cannot run stops the run."""
    try:
        item = score_sample(scorer(), doc_record(doc, results[0] if results else ""))
    except (ValueError, RuntimeError) as e:
        raise stop(str(e)) from None
    code = Outcome(metrics.outcome(item), item["concept"])
    out: dict[str, Any] = {name: code for name in metrics.METRICS} | {"breakdown": item}
    group_metric = KINDS[doc["task"]].group_metric
    if group_metric:
        out[group_metric] = code
    return out


def agg_accuracy(outcomes: list[str]) -> float | None:
    return metrics.summarize(outcomes)["accuracy"]


def agg_accuracy_strict(outcomes: list[str]) -> float | None:
    return metrics.summarize(outcomes)["accuracy_strict"]


def agg_na_rate(outcomes: list[str]) -> float | None:
    return metrics.summarize(outcomes)["na_rate"]


def agg_group_input(outcomes: list[str]) -> Detail:
    """A subtask's input to its group statistic: its alignment score, kept off the console table (the
    value is the group's, shown on the group row)."""
    return Detail({"score": metrics.summarize(outcomes)["accuracy"],
                   "role": "this task's alignment score, the input of its group's statistic"})


def standard_error(metric: str):
    """lmms-eval's Stderr column for ``metric``: the standard error of the same clustered (concept)
    bootstrap that gives the metric's CI in ``breakdown`` (``uc_tasks.summary.metric_ci``)."""

    def stderr(outcomes: list[str]) -> float | str:
        by_concept: dict[str, list[str]] = {}
        for o in outcomes:
            by_concept.setdefault(getattr(o, "cluster", ""), []).append(o)
        counts = {c: metrics.summarize(v) for c, v in by_concept.items()}
        se = metric_ci(counts, metric, seed=_seed())["standard_error"]
        return "N/A" if se is None else se

    return stderr


STDERR_OF = {agg_accuracy: "accuracy", agg_accuracy_strict: "accuracy_strict", agg_na_rate: "na_rate"}
"""Our aggregations whose standard error lmms-eval asks for (``uc_tasks.lmms.register`` wires them in)."""


def _seed() -> int:
    try:
        return seed_from_env()
    except DataError as e:
        raise stop(str(e)) from None


def agg_breakdown(items: list[dict[str, Any]]) -> Detail:
    kind = items[0]["task"] if items else "unknown"
    return Detail(
        {
            **task_summary(items, seed=_seed()),
            "task": kind,
            "metric_definitions": {n: m.help for n, m in metrics.METRICS.items()},
            **RUN_STATE.get(kind, {}),
            "scorer": scorer().settings(),  # now, after reading: a model scorer knows what it loaded
            "provenance": provenance(),
        }
    )


def _by_task(breakdowns: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {b.get("task"): b for b in breakdowns if isinstance(b, dict)}


def _scores(inputs: list[Any], needed: str) -> list[float | None]:
    if len(inputs) != 2:
        raise stop(f"{needed}, got {len(inputs)} scores")
    return [s.get("score") if isinstance(s, dict) else s for s in inputs]


def group_modality_gap(scores: list[Any], sizes: list[int], weight_by_size: bool = False) -> float | None:
    """Group ``modality_gap``: text minus image alignment score (subtasks in group order: image, text)."""
    image, text = _scores(scores, "modality_gap needs exactly one image and one text task")
    return metrics.difference(text, image)


def group_breakdown(breakdowns: list[dict[str, Any]], sizes: list[int], weight_by_size: bool = False) -> Detail:
    """Group ``breakdown``: the modality gap overall and per category with both scores and a CI, the
    per-concept paired tests and ranking, and perception x alignment (``uc_tasks.summary.group_summary``)."""
    try:
        return Detail(group_summary(_by_task(breakdowns), seed=_seed()))
    except ValueError as e:
        raise stop(str(e)) from None


def group_context_sensitivity(scores: list[Any], sizes: list[int], weight_by_size: bool = False) -> float | None:
    """Group ``image_sensitivity`` / ``text_sensitivity``: unsafe-context minus safe-context unsafe share
    (subtasks in group order: safe context, then unsafe context)."""
    safe, unsafe = _scores(scores, "context sensitivity needs one safe- and one unsafe-context task")
    return metrics.difference(unsafe, safe)


def group_context_breakdown(breakdowns: list[dict[str, Any]], sizes: list[int], weight_by_size: bool = False) -> Detail:
    """Group ``breakdown``: context sensitivity per form, overall and per category, with concept-bootstrap CIs."""
    by_task = _by_task(breakdowns)
    out = context_summary(by_task, seed=_seed())
    if not out:
        raise stop(f"context sensitivity needs safe- and unsafe-context tasks; got {sorted(by_task)}")
    return Detail({"context_sensitivity": out})
