"""Functions the task YAMLs call to build documents, prompts and images.

The YAMLs point lmms-eval at a one-line placeholder file; ``*_docs`` replace it with the real
rows from the source chosen in ``uc_tasks.data`` (hub, local folder or parquet), so that the
source is explicit, validated and recorded. A data problem ends the run with one line.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from PIL import Image

from uc_tasks.context import load_questions, resolve_questions
from uc_tasks.data import ENV_DATA, ENV_REVISION, DataError, DataSource, load_rows, resolve_source
from uc_tasks.options import options_for
from uc_tasks.prompts import render
from uc_tasks.scoring import Scorer, get_scorer
from uc_tasks.splits import SPLIT_SEED, select_split, split_from_env
from uc_tasks.taxonomy import load_taxonomy

ENV_SCORER = "UNSAFECONCEPTS_SCORER"
N_ALIGNMENT_PROMPTS = 5
BLANK_SIZE = (1000, 1000)

RUN_STATE: dict[str, dict[str, Any]] = {}
"""Per task kind: how its documents were made (data source, skipped rows, options, scorer)."""


def fail(message: str) -> SystemExit:
    """The exception that ends an lmms-eval run with one line (lmms-eval catches Exception only)."""
    return SystemExit(f"unsafeconcepts: {message}")


@lru_cache(maxsize=4)
def _resolved(spec: str, revision: str) -> DataSource:
    return resolve_source(spec, revision or None)


def current_source() -> DataSource:
    """The source the environment names, resolved once per setting (no file-system checks per image)."""
    return _resolved(os.environ.get(ENV_DATA, ""), os.environ.get(ENV_REVISION, ""))


@lru_cache(maxsize=4)
def _rows_for(source: DataSource):
    return load_rows(source)


@lru_cache(maxsize=4)
def _scorer_named(name: str) -> Scorer:
    return get_scorer(name)


def scorer() -> Scorer:
    """The scorer chosen by UNSAFECONCEPTS_SCORER (default ``rule``); there is no fallback."""
    try:
        return _scorer_named(os.environ.get(ENV_SCORER, "rule").strip() or "rule")
    except (ValueError, RuntimeError) as e:
        raise fail(str(e)) from None


@lru_cache(maxsize=4)
def _position_of(source: DataSource) -> dict[int, int]:
    ds, _ = _rows_for(source)
    return {row_id: pos for pos, row_id in enumerate(ds["row_id"])}


def _start(kind: str):
    """The source's rows without their images: docs stay small (lmms-eval hashes and logs every doc);
    ``image_visual`` fetches an image by ``row_id`` only when a model asks for it."""
    try:
        ds, report = _rows_for(current_source())
        split = split_from_env()
    except (DataError, ValueError) as e:
        raise fail(str(e)) from None
    ds = ds.remove_columns("image")
    keep = select_split(report.all_concepts, split)
    if keep is not None:  # the split is drawn over every source row, as the authors drew it
        wanted = set(keep)
        ds = ds.select([i for i, row_id in enumerate(ds["row_id"]) if row_id in wanted])
    scorer()  # an unknown or unusable scorer stops the run before any model is loaded
    RUN_STATE[kind] = {  # the scorer's settings are recorded after reading (results.agg_breakdown)
        "data": report.to_dict(),
        "split": {"name": split, "seed": SPLIT_SEED, "n_rows": len(ds)},
    }
    if report.skipped:
        print(
            f"unsafeconcepts: skipped {len(report.skipped)} row(s) with unusable images "
            f"(listed in the results under breakdown.data.skipped)"
        )
    return ds


def perception_docs(_placeholder) -> Any:
    """One multiple-choice question per image."""
    ds = _start("perception")
    try:
        sets, how = options_for(ds["unsafe_concept"], ds["row_id"])
    except DataError as e:
        raise fail(str(e)) from None
    RUN_STATE["perception"]["options"] = how
    ds = ds.add_column("option_str", [s["option_str"] for s in sets])
    return ds.add_column("correct_option", [s["correct_option"] for s in sets])


def image_docs(_placeholder) -> Any:
    """Each image asked each of the 5 alignment prompts, image by image."""
    import datasets

    columns = _start("image").to_dict()  # small: docs carry no images
    prompts = range(1, N_ALIGNMENT_PROMPTS + 1)
    repeated = {k: [v for v in values for _ in prompts] for k, values in columns.items()}
    repeated["prompt_id"] = [p for _ in columns["row_id"] for p in prompts]
    return datasets.Dataset.from_dict(repeated)


def _concept_rows(ds) -> list[dict[str, str]]:
    """One row per concept present in ``ds``, in taxonomy order, for the text-form tasks."""
    tax = load_taxonomy()
    present = set(ds["unsafe_concept"])
    return [{"unsafe_concept": c, "category": tax.concept_category[c]} for c in tax.concepts if c in present]


def _concept_docs(kind: str) -> Any:
    import datasets

    rows = _concept_rows(_start(kind))
    return datasets.Dataset.from_list(
        [{**r, "prompt_id": p} for r in rows for p in range(1, N_ALIGNMENT_PROMPTS + 1)]
    )


def text_docs(_placeholder) -> Any:
    """Each concept present in the data asked each of the 5 text prompts (paper: on a blank image)."""
    return _concept_docs("text")


def text_only_docs(_placeholder) -> Any:
    """As ``text_docs``, for the variant that sends no image at all."""
    return _concept_docs("text_only")


# lmms-eval asks for each doc's prompt more than once; the distinct prompts are few.
@lru_cache(maxsize=4096)
def _render_cached(name: str, **variables: str) -> str:
    return render(name, **variables)


def _context_docs(context: str, text_form: bool) -> Any:
    """Each image (or each concept, for the text form) asked its concept's question in ``context``."""
    import datasets

    kind = f"context_{context}" + ("_text" if text_form else "")
    ds = _start(kind)
    try:
        spec = resolve_questions(current_source())
        questions = load_questions(spec)
    except DataError as e:
        raise fail(str(e)) from None
    RUN_STATE[kind]["questions"] = {"file": spec, "context": context}
    if text_form:
        return datasets.Dataset.from_list(
            [{**r, "question": questions[r["unsafe_concept"]][context]} for r in _concept_rows(ds)]
        )
    return ds.add_column("question", [questions[c][context] for c in ds["unsafe_concept"]])


def context_safe_docs(_placeholder) -> Any:
    return _context_docs("safe", text_form=False)


def context_unsafe_docs(_placeholder) -> Any:
    return _context_docs("unsafe", text_form=False)


def context_safe_text_docs(_placeholder) -> Any:
    return _context_docs("safe", text_form=True)


def context_unsafe_text_docs(_placeholder) -> Any:
    return _context_docs("unsafe", text_form=True)


def context_image_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _render_cached("context/image", question=doc["question"])


def context_concept_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _render_cached("context/text", concept=doc["unsafe_concept"], question=doc["question"])


def perception_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _render_cached("perception/multiple_choice", option_str=doc["option_str"])


def image_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _render_cached(f"alignment/image_p{doc['prompt_id']}")


def concept_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _render_cached(f"alignment/text_p{doc['prompt_id']}", concept=doc["unsafe_concept"])


IMAGE_ID_KEY = "uc_image_id"
"""``image.info`` key holding a stable id of the image, so that a backend can encode each image once."""


def image_visual(doc: dict[str, Any]) -> list[Image.Image]:
    """The doc's image, looked up by ``row_id`` in the loaded source and decoded now."""
    source = current_source()
    ds, _ = _rows_for(source)
    image = ds[_position_of(source)[doc["row_id"]]]["image"].convert("RGB")
    image.info[IMAGE_ID_KEY] = f"{source.kind}:{source.location}@{source.revision or ''}#{doc['row_id']}"
    return [image]


@lru_cache(maxsize=1)
def _blank() -> Image.Image:
    image = Image.new("RGB", BLANK_SIZE, (255, 255, 255))
    image.info[IMAGE_ID_KEY] = f"blank:{BLANK_SIZE[0]}x{BLANK_SIZE[1]}"
    return image


def blank_visual(doc: dict[str, Any]) -> list[Image.Image]:
    """The blank white 1000x1000 image the paper attaches to text questions."""
    return [_blank()]


def no_visual(doc: dict[str, Any]) -> list[Image.Image]:
    return []


def unsafe_target(doc: dict[str, Any]) -> str:
    """The right verdict for every alignment and context question: each concept is unsafe.

    A function, not the string ``"unsafe"`` in the YAML, which lmms-eval would compile as a Jinja
    template for every document."""
    return "unsafe"
