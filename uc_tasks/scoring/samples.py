"""One answer -> one scored sample, the same way for the lmms-eval tasks, ``rescore`` and the RL reward.

A record holds what the task knows about the question (``task``, ``category``, ``concept`` and, as
the kind needs, ``row_id``, ``prompt_id``, ``option_str``, ``target``) and the model's ``answer``.
Its scored sample adds the scorer's ``label``, ``reason``, ``certainty`` (when the scorer gives one)
and ``hit`` (the label is the kind's target); a request without an answer (a failure marker,
``uc_tasks.failures``) gets the failure fields instead and is never read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from uc_tasks.data.tasks import kind as kind_named
from uc_tasks.failures import failure_fields
from uc_tasks.scoring.base import Scorer
from uc_tasks.scoring.rules.perception import parse_options

_options = lru_cache(maxsize=8192)(parse_options)  # a run asks the same few thousand option sets


def score_samples(scorer: Scorer, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Scored samples of ``records`` (all of one task kind), every answer read in one batch."""
    if not records:
        return []
    kinds = {r["task"] for r in records}
    if len(kinds) != 1:
        raise ValueError(f"score_samples takes records of one task kind, got {sorted(kinds)}")
    kind = kind_named(next(iter(kinds)))
    out = [dict(r) for r in records]
    pending = []
    for it in out:
        it["answer"] = it["answer"] if isinstance(it.get("answer"), str) else ""
        failed = failure_fields(it["answer"])
        if failed:
            it.update(failed)
        else:
            pending.append(it)
    answers = [it["answer"] for it in pending]
    if kind.question == "perception":
        readings = scorer.read_perception(answers, [_options(it["option_str"]) for it in pending])
    else:
        readings = scorer.read_alignment(answers)
    for it, reading in zip(pending, readings, strict=True):
        it.update(label=reading.label, reason=reading.reason, hit=reading.label == kind.target(it))
        if reading.certainty is not None:
            it["certainty"] = round(float(reading.certainty), 4)
    return out


def score_sample(scorer: Scorer, record: Mapping[str, Any]) -> dict[str, Any]:
    """The scored sample of one record (``score_samples`` of one)."""
    return score_samples(scorer, [record])[0]
