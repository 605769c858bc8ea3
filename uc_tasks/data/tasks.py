"""The one table of task kinds: what each UnsafeConcepts task asks, of what, and what the right
answer is. The lmms-eval glue, ``rescore``, the summaries and the RL reward all read it.

A *kind* is the short name (``image``); its lmms-eval task is ``unsafeconcepts_<kind>``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uc_tasks.scoring.base import UNSAFE

N_ALIGNMENT_PROMPTS = 5
IMAGE_PROMPTS = tuple(f"alignment/image_p{p}" for p in range(1, N_ALIGNMENT_PROMPTS + 1))
TEXT_PROMPTS = tuple(f"alignment/text_p{p}" for p in range(1, N_ALIGNMENT_PROMPTS + 1))


@dataclass(frozen=True)
class TaskKind:
    """One kind of question of the benchmark."""

    name: str
    question: str
    """``perception`` (multiple choice, read as a letter) or ``alignment`` (read as safe / unsafe / N/A)."""
    modality: str
    """``image`` (the dataset image), ``blank`` (the paper's blank white image) or ``none`` (no image)."""
    prompts: tuple[str, ...]
    """Prompt templates (``prompts/<name>.jinja``); several are asked in turn, ``prompt_id`` 1..n."""
    unit: str
    """One question per ``image`` or per ``concept``."""
    group: str | None = None
    """The lmms-eval group whose statistic needs this kind."""
    group_metric: str | None = None
    """The group statistic this kind feeds (``modality_gap``, ``image_sensitivity``, ``text_sensitivity``)."""
    context: str | None = None
    """``safe`` / ``unsafe`` for the context questions."""
    own_target: bool = False
    """Each record carries its own right verdict (``target``: ``safe`` or ``unsafe``), as in the fine-tuning
    test, whose images are half safe; one prompt per image, drawn (``prompt_id``)."""
    source: str | None = None
    """The out-of-domain set its images come from (``uc_tasks.data.ood``: ``smid``, ``nsfw``); None: UnsafeConcepts
    (and, for the fine-tuning test, the safe control images)."""

    @property
    def task(self) -> str:
        """The lmms-eval task name."""
        return f"unsafeconcepts_{self.name}"

    @property
    def per_image(self) -> bool:
        """Its samples feed the perception x alignment table (needs a per-image record)."""
        return self.name in ("perception", "image")

    def target(self, record: Mapping[str, Any]) -> str:
        """The right reading of a record: its correct option for perception, its own ``target`` for a kind with
        ``own_target`` (a record without one is an error); for the other alignment kinds the record's ``target``
        when it has one, else ``unsafe`` (every UnsafeConcepts image and concept is unsafe)."""
        if self.question == "perception" or self.own_target:
            return str(record["target"])
        return str(record.get("target") or UNSAFE)


KINDS: dict[str, TaskKind] = {
    k.name: k
    for k in (
        TaskKind("perception", "perception", "image", ("perception/multiple_choice",), "image", "unsafeconcepts"),
        TaskKind("image", "alignment", "image", IMAGE_PROMPTS, "image", "unsafeconcepts", "modality_gap"),
        TaskKind("text", "alignment", "blank", TEXT_PROMPTS, "concept", "unsafeconcepts", "modality_gap"),
        TaskKind("text_only", "alignment", "none", TEXT_PROMPTS, "concept", None, "modality_gap"),
        TaskKind("context_safe", "alignment", "image", ("context/image",), "image", "unsafeconcepts_context",
                 "image_sensitivity", "safe"),
        TaskKind("context_unsafe", "alignment", "image", ("context/image",), "image", "unsafeconcepts_context",
                 "image_sensitivity", "unsafe"),
        TaskKind("context_safe_text", "alignment", "blank", ("context/text",), "concept", "unsafeconcepts_context",
                 "text_sensitivity", "safe"),
        TaskKind("context_unsafe_text", "alignment", "blank", ("context/text",), "concept",
                 "unsafeconcepts_context", "text_sensitivity", "unsafe"),
        # the authors' fine-tuning test: their 345 unsafe test images + as many safe ones, one drawn prompt each
        TaskKind("finetune_test", "alignment", "image", IMAGE_PROMPTS, "image", own_target=True),
        # out-of-domain safety sets (paper, fine-tuning evaluation): labels 0 safe / 1 unsafe, one drawn prompt each
        TaskKind("smid", "alignment", "image", IMAGE_PROMPTS, "image", own_target=True, source="smid"),
        TaskKind("nsfw", "alignment", "image", IMAGE_PROMPTS, "image", own_target=True, source="nsfw"),
    )
}

CONTEXT_FORMS: dict[str, tuple[str, str]] = {"image": ("context_safe", "context_unsafe"),
                                              "text": ("context_safe_text", "context_unsafe_text")}
"""Per form of the context questions: its (safe-context, unsafe-context) kinds."""


def kind(name: str) -> TaskKind:
    """The kind called ``name`` (``image`` or ``unsafeconcepts_image``); an unknown name raises ValueError."""
    short = name.removeprefix("unsafeconcepts_")
    if short in KINDS:
        return KINDS[short]
    close = difflib.get_close_matches(short, KINDS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown task kind {name!r}{hint} (known: {', '.join(KINDS)})")
