"""Read a task's answers in one batch before lmms-eval scores them one document at a time.

lmms-eval calls ``process_results`` per document. A model-based scorer (classifier, judge) is fast
only in batches, so this filter, which lmms-eval applies once per task to all responses, hands every
answer to the scorer at once; the scorer keeps its readings, and ``process_results`` then finds each
one already read. Responses pass through unchanged. Failure markers (``uc_tasks.answers``) are not
answers and are not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lmms_eval.api.filter import Filter

from uc_tasks.answers import parse_failure
from uc_tasks.lmms.docs import fail, scorer
from uc_tasks.scoring.parse_perception import parse_options


class ReadAnswersInBatch(Filter):
    """Filter step (after ``take_first``) that lets the chosen scorer read all answers in one batch.

    Perception documents (they carry ``option_str``) are read as multiple choice, all others as
    alignment answers."""

    def apply(self, resps: Iterable[Any], docs: Sequence[dict[str, Any]]) -> list[Any]:
        resps = list(resps)
        chosen = scorer()
        if chosen.name == "rule":
            return resps  # the rules are cheap per answer and memoised: nothing to gain
        # With --limit lmms-eval passes every doc but only the first responses. Readings are memoised
        # by answer (and options), so a doc paired wrongly here costs a reading, never a wrong one.
        docs = list(docs)[: len(resps)]
        picked = [(r, d) for r, d in zip(resps, docs, strict=False) if isinstance(r, str) and not parse_failure(r)]
        perception = [(r, d) for r, d in picked if "option_str" in d]
        alignment = [r for r, d in picked if "option_str" not in d]
        try:
            if alignment:
                chosen.read_alignment(alignment)
            if perception:
                chosen.read_perception([r for r, _ in perception],
                                       [parse_options(d["option_str"]) for _, d in perception])
        except (ValueError, RuntimeError) as e:  # a scorer that cannot run stops the run
            raise fail(str(e)) from None
        return resps
