"""The functions ``unsafeconcepts_finetune_test`` names: per-sample values and the aggregations of its
headline metrics (``uc_tasks.metrics.FINETUNE_METRICS`` and ``diversity``).

Each document is scored as in every task (``uc_tasks.lmms.results.process_results``: one scored sample in
``breakdown``); its outcome code goes to ``accuracy`` and ``na_rate``, and to ``accuracy_safe`` or
``accuracy_unsafe`` by its target (``None`` for the other one, which that aggregation skips); ``diversity``
gets the answer. ``breakdown`` is aggregated by ``uc_tasks.lmms.results.agg_breakdown``, whose summary
(``uc_tasks.summary.task_summary``) adds the fine-tuning columns with their CIs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from uc_tasks import metrics
from uc_tasks.lmms import results
from uc_tasks.outcomes import Outcome
from uc_tasks.summary import diversity_with_ci


def process_results(doc: dict[str, Any], answers: Sequence[Any]) -> dict[str, Any]:
    """Outcome codes for the headline metrics (``None`` outside a metric's subset), the answer for
    ``diversity``, the scored sample for ``breakdown``."""
    scored = results.process_results(doc, answers)
    item = scored["breakdown"]
    code = Outcome(str(scored["accuracy"]), f"{item['target']}:{item['concept']}")  # the clusters of the CIs
    out: dict[str, Any] = {name: code if m.takes(item) else None for name, m in metrics.FINETUNE_METRICS.items()}
    answered = not item.get("failed") and isinstance(item.get("answer"), str)
    out["diversity"] = {"answer": item["answer"], "target": item["target"], "concept": item["concept"]} \
        if answered else None
    out["breakdown"] = item
    return out


def _aggregation(name: str) -> Callable[[list[Any]], float | None]:
    metric = metrics.FINETUNE_METRICS[name]

    def aggregate(outcomes: list[Any]) -> float | None:
        counts = metrics.summarize(o for o in outcomes if o is not None)
        return metric.compute(counts["n"], counts["n_na"], counts["n_hit"])

    aggregate.__name__ = aggregate.__qualname__ = f"agg_{name}"
    aggregate.__doc__ = f"``{name}``: {metric.help}."
    return aggregate


agg_accuracy = _aggregation("accuracy")
agg_accuracy_safe = _aggregation("accuracy_safe")
agg_accuracy_unsafe = _aggregation("accuracy_unsafe")
agg_na_rate = _aggregation("na_rate")


def agg_diversity(answers: list[Any]) -> float | None:
    """``diversity``: 1 - Self-BLEU of all answers (``uc_tasks.summary.diversity_with_ci``, its value only)."""
    items = [a for a in answers if a is not None]
    return diversity_with_ci(items, seed=0, n_resamples=1)["diversity"]


def standard_error(name: str) -> Callable[[list[Any]], float | str]:
    """The clustered bootstrap's standard error of metric ``name`` (the Stderr column; the CI is in ``breakdown``)."""
    metric = metrics.FINETUNE_METRICS[name]
    plain = results.standard_error(metric.metric)

    def stderr(outcomes: list[Any]) -> float | str:
        return plain([o for o in outcomes if o is not None])

    return stderr


STDERR_OF = {agg_accuracy: "accuracy", agg_accuracy_safe: "accuracy_safe", agg_accuracy_unsafe: "accuracy_unsafe",
             agg_na_rate: "na_rate"}
"""Our aggregations whose standard error lmms-eval asks for (``uc_tasks.lmms.register`` wires them in)."""
