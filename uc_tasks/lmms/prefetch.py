"""Read a task's answers in one batch before lmms-eval scores them one document at a time.

lmms-eval calls ``process_results`` per document. A model-based scorer (classifier, judge) is fast
only in batches, so this filter, which lmms-eval applies once per task to all responses, hands every
answer to the scorer at once; the scorer keeps its readings, and ``process_results`` then finds each
one already read (``uc_tasks.scoring.samples``). Responses pass through unchanged. Failure markers
(``uc_tasks.failures``) are not answers and are not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lmms_eval.api.filter import Filter

from uc_tasks.errors import stop
from uc_tasks.lmms.docs import doc_record, scorer
from uc_tasks.lmms.rescue import save_unscored
from uc_tasks.scoring.samples import score_samples


class ReadAnswersInBatch(Filter):
    """Filter step (after ``take_first``) that lets the chosen scorer read all answers in one batch.

    Each document's kind (``task``) says how its answer is read."""

    def apply(self, resps: Iterable[Any], docs: Sequence[dict[str, Any]]) -> list[Any]:
        resps = list(resps)
        chosen = scorer()
        if chosen.name == "rule":
            return resps  # the rules are cheap per answer and memoised: nothing to gain
        # With --limit lmms-eval passes every doc but only the first responses. Readings are memoised
        # by answer (and options), so a doc paired wrongly here costs a reading, never a wrong one.
        docs = list(docs)[: len(resps)]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for r, d in zip(resps, docs, strict=False):
            by_kind.setdefault(d["task"], []).append(doc_record(d, r))
        try:
            for records in by_kind.values():
                score_samples(chosen, records)
        except (ValueError, RuntimeError) as e:  # a scorer that cannot run stops the run; the answers stay
            saved = save_unscored([r for records in by_kind.values() for r in records])
            finish = f"python -m uc_tasks.rescore {saved} --scorer {chosen.name}"
            raise stop(f"{e} The {len(resps)} answers are saved unscored in {saved}; finish with `{finish}` "
                       "once the scorer can run.") from None
        return resps

