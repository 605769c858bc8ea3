"""Answers that are not answers: how a model backend records a request that produced no answer.

lmms-eval passes each response to the task as a string. A backend that got no answer (the provider
blocked the request, every retry failed, generation raised) must neither drop the sample nor hand
the task an empty or invented answer. It returns ``failed_answer(kind, detail)`` instead; the
tasks recognise it with ``parse_failure``, leave the sample out of every metric and count it per
kind in the results. A model that answers with a refusal did answer: that is read by the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass

from uc_tasks.errors import one_line

PROVIDER_BLOCK = "provider_block"
"""The provider refused the request itself (e.g. a content filter); the model never answered."""
ERROR = "error"
"""No answer after all retries, or generation raised: a transport, server or runtime failure."""
FAILURE_KINDS = (PROVIDER_BLOCK, ERROR)

_PREFIX = "[unsafeconcepts:failed:"


@dataclass(frozen=True)
class Failure:
    """Why a request produced no answer."""

    kind: str
    detail: str


def failed_answer(kind: str, detail: str) -> str:
    """The response string a backend returns for a request without an answer."""
    if kind not in FAILURE_KINDS:
        raise ValueError(f"unknown failure kind {kind!r}; use one of {', '.join(FAILURE_KINDS)}")
    return f"{_PREFIX}{kind}] {one_line(detail, 500)}"


def failure_fields(answer: object) -> dict[str, object] | None:
    """The fields of a scored sample for a request without an answer (no label, never a hit), or None
    when ``answer`` is a real answer."""
    failure = parse_failure(answer)
    if failure is None:
        return None
    return {"label": None, "hit": False, "failed": failure.kind, "reason": failure.detail}


def parse_failure(answer: object) -> Failure | None:
    """The failure recorded in ``answer``, or None when it is a real answer."""
    if not isinstance(answer, str) or not answer.startswith(_PREFIX):
        return None
    kind, _, detail = answer[len(_PREFIX) :].partition("]")
    return Failure(kind, detail.strip())
