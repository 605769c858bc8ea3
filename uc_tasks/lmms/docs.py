"""Functions the task YAMLs call to build documents, prompts and images.

The YAMLs point lmms-eval at a one-line placeholder file; ``*_docs`` replace it with the real
rows from the source the settings name (hub, local folder or parquet), so that the source is
explicit, validated and recorded. Each doc carries its task kind (``task``, ``uc_tasks.data.tasks``),
so that one function renders any doc's prompt, one gives its image and one scores its answer. A data
problem ends the run with one line.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from PIL import Image

from uc_tasks import settings
from uc_tasks.data.context import load_questions, resolve_questions
from uc_tasks.data.ood import LABELS, load_ood_rows, resolve_ood_source
from uc_tasks.data.options import options_for
from uc_tasks.data.safe import SAFE_CATEGORY, load_safe_rows, resolve_safe_source
from uc_tasks.data.sources import DataError, DataSource, load_rows, resolve_source
from uc_tasks.data.splits import (
    SPLIT_SEED,
    TEST_PROMPT_SEED,
    authors_split,
    heldout_prompt_ids,
    safe_split,
    select_split,
    split_from_env,
)
from uc_tasks.data.tasks import KINDS, TaskKind
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.data.visuals import IMAGE_ID_KEY, blank_image
from uc_tasks.errors import stop
from uc_tasks.lmms.console import register_summary
from uc_tasks.prompts import render
from uc_tasks.scoring import Scorer
from uc_tasks.scoring.base import SAFE, UNSAFE, prepare
from uc_tasks.scoring.registry import chosen_scorer

RUN_STATE: dict[str, dict[str, Any]] = {}
"""Per task kind: how its documents were made (data source, skipped rows, split, options, questions)."""


@lru_cache(maxsize=4)
def _resolved(spec: str, revision: str) -> DataSource:
    return resolve_source(spec, revision or None)


def current_source() -> DataSource:
    """The source the settings name, resolved once per setting (no file-system checks per image)."""
    now = settings.current()
    return _resolved(now.data, now.revision)


@lru_cache(maxsize=4)
def _rows_for(source: DataSource):
    return load_rows(source)


def scorer() -> Scorer:
    """The chosen scorer; one that is unknown or cannot run stops the run (there is no fallback)."""
    try:
        return chosen_scorer()
    except (ValueError, RuntimeError) as e:
        raise stop(str(e)) from None


@lru_cache(maxsize=4)
def _position_of(source: DataSource) -> dict[int, int]:
    ds, _ = _rows_for(source)
    return {row_id: pos for pos, row_id in enumerate(ds["row_id"])}


@lru_cache(maxsize=4)
def _resolved_safe(spec: str) -> DataSource:
    return resolve_safe_source(spec)


def current_safe_source() -> DataSource:
    """The safe images' source the settings name (``UNSAFECONCEPTS_SAFE_DATA``), resolved once per setting."""
    return _resolved_safe(settings.current().safe_data)


@lru_cache(maxsize=4)
def _safe_rows_for(source: DataSource):
    return load_safe_rows(source)


@lru_cache(maxsize=4)
def _safe_position_of(source: DataSource) -> dict[int, int]:
    ds, _ = _safe_rows_for(source)
    return {row_id: pos for pos, row_id in enumerate(ds["row_id"])}


@lru_cache(maxsize=8)
def _resolved_ood(name: str, spec: str) -> DataSource:
    return resolve_ood_source(name, spec)


def current_ood_source(name: str) -> DataSource:
    """The source of out-of-domain set ``name`` that the settings name, resolved once per setting."""
    from uc_tasks.data.ood import SETS

    return _resolved_ood(name, getattr(settings.current(), SETS[name].setting))


@lru_cache(maxsize=8)
def _ood_rows_for(name: str, source: DataSource):
    return load_ood_rows(name, source)


@lru_cache(maxsize=8)
def _ood_position_of(name: str, source: DataSource) -> dict[int, int]:
    ds, _ = _ood_rows_for(name, source)
    return {row_id: pos for pos, row_id in enumerate(ds["row_id"])}


def _prepare(kind: TaskKind) -> None:
    """Before any generation: an unknown or unusable scorer (a classifier without its weights) stops the run;
    the end-of-run summary is registered."""
    try:
        prepare(scorer(), kind.question)
    except (ValueError, RuntimeError) as e:
        raise stop(str(e)) from None
    register_summary()


def _start(kind: TaskKind) -> dict[str, list[Any]]:
    """The source's rows of the chosen split, without their images, as columns: docs stay small
    (lmms-eval hashes and logs every doc); ``doc_to_visual`` fetches an image by ``row_id`` only when a
    model asks for it."""
    try:
        ds, report = _rows_for(current_source())
        split = split_from_env()
    except (DataError, ValueError) as e:
        raise stop(str(e)) from None
    ds = ds.remove_columns("image")
    keep = select_split(report.all_concepts, split)
    if keep is not None:  # the split is drawn over every source row, as the authors drew it
        wanted = set(keep)
        ds = ds.select([i for i, row_id in enumerate(ds["row_id"]) if row_id in wanted])
    if not len(ds):
        raise stop(f"{settings.env_name('split')}={split} selects no rows of {report.source.location} "
                   f"({report.n_rows} usable rows); use a larger dataset or the split 'all'")
    _prepare(kind)
    RUN_STATE[kind.name] = {  # the scorer's settings are recorded after reading (results.agg_breakdown)
        "data": report.to_dict(),
        "split": {"name": split, "seed": SPLIT_SEED, "n_rows": len(ds)},
    }
    if report.skipped:
        print(
            f"unsafeconcepts: skipped {len(report.skipped)} row(s) with unusable images "
            f"(listed in the results under breakdown.data.skipped)"
        )
    return ds.to_dict()


def _per_concept(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """One row per concept present, in taxonomy order (the text-form questions)."""
    tax = load_taxonomy()
    present = set(columns["unsafe_concept"])
    concepts = [c for c in tax.concepts if c in present]
    return {"unsafe_concept": concepts, "category": [tax.concept_category[c] for c in concepts]}


def build_docs(name: str) -> Any:
    """The documents of task kind ``name``: one per image or concept, each prompt of the kind in turn."""
    import datasets

    kind = KINDS[name]
    columns = _start(kind)
    if kind.unit == "concept":
        columns = _per_concept(columns)
    if kind.question == "perception":
        try:
            sets, how = options_for(columns["unsafe_concept"], columns["row_id"])
        except DataError as e:
            raise stop(str(e)) from None
        RUN_STATE[kind.name]["options"] = how
        columns["option_str"] = [s["option_str"] for s in sets]
        columns["correct_option"] = [s["correct_option"] for s in sets]
    if kind.context:
        try:
            spec = resolve_questions(current_source())
            questions = load_questions(spec)
        except DataError as e:
            raise stop(str(e)) from None
        RUN_STATE[kind.name]["questions"] = {"file": spec, "context": kind.context}
        columns["question"] = [questions[c][kind.context] for c in columns["unsafe_concept"]]
    if len(kind.prompts) > 1:  # row by row, each prompt in turn
        n = len(kind.prompts)
        columns = {k: [v for v in values for _ in range(n)] for k, values in columns.items()}
        columns["prompt_id"] = [p for _ in range(len(columns["unsafe_concept"]) // n) for p in range(1, n + 1)]
    columns["task"] = [kind.name] * len(columns["unsafe_concept"])
    return datasets.Dataset.from_dict(columns)


def build_finetune_docs() -> Any:
    """The fine-tuning test's documents: the authors' unsafe test images (ascending row order), then as many
    safe test images (``uc_tasks.data.splits.safe_split`` order), one prompt each
    (``np.random.seed(42); np.random.choice(5, n)`` over that list). Both splits are drawn over every source
    row, skipped ones included, so that an unusable image shifts no other image's part or prompt."""
    import datasets

    kind = KINDS["finetune_test"]
    try:
        ds, report = _rows_for(current_source())
        split = split_from_env()
        safe_ds, safe_report = _safe_rows_for(current_safe_source())
        train, test = authors_split(report.all_concepts)
        _, safe_test = safe_split(len(safe_report.all_concepts), len(train), len(test))
    except (DataError, ValueError) as e:
        raise stop(str(e)) from None
    if split == "finetune_train":
        raise stop(f"{settings.env_name('split')}=finetune_train: unsafeconcepts_finetune_test always asks the "
                   "authors' test images; unset the variable (or set it to finetune_test)")
    test = sorted(test)
    prompt_ids = heldout_prompt_ids(len(test) + len(safe_test))
    pos, safe_pos = _position_of(current_source()), _safe_position_of(current_safe_source())
    unsafe = [(r, p) for r, p in zip(test, prompt_ids, strict=False) if r in pos]
    safe = [(r, p) for r, p in zip(safe_test, prompt_ids[len(test):], strict=True) if r in safe_pos]
    _prepare(kind)
    categories, concepts = ds.data.column("category").to_pylist(), ds.data.column("unsafe_concept").to_pylist()
    safe_concepts = safe_ds.data.column("concept").to_pylist()
    columns: dict[str, list[Any]] = {
        "row_id": [r for r, _ in unsafe] + [r for r, _ in safe],
        "category": [categories[pos[r]] for r, _ in unsafe] + [SAFE_CATEGORY] * len(safe),
        # the image's concept: for a safe image its class name (the raw ImageNet class string)
        "unsafe_concept": [concepts[pos[r]] for r, _ in unsafe] + [safe_concepts[safe_pos[r]] for r, _ in safe],
        "target": [UNSAFE] * len(unsafe) + [SAFE] * len(safe),
        "prompt_id": [p for _, p in unsafe] + [p for _, p in safe],
    }
    columns["task"] = [kind.name] * len(columns["row_id"])
    RUN_STATE[kind.name] = {
        "data": report.to_dict(),
        "safe_data": safe_report.to_dict(),
        "split": {"name": "finetune_test", "seed": SPLIT_SEED, "prompt_seed": TEST_PROMPT_SEED,
                  "n_rows": len(columns["row_id"]), "n_unsafe": len(unsafe), "n_safe": len(safe)},
    }
    for what, rep in (("", report), ("safe ", safe_report)):
        if rep.skipped:
            print(f"unsafeconcepts: skipped {len(rep.skipped)} {what}row(s) with unusable images (listed in the "
                  f"results under breakdown.{what.strip() + '_' if what else ''}data.skipped)")
    return datasets.Dataset.from_dict(columns)


def build_ood_docs(name: str) -> Any:
    """The documents of an out-of-domain set (``unsafeconcepts_smid``, ``unsafeconcepts_nsfw``): every usable image
    in dataset order, its target from its label (0 safe, 1 unsafe), one prompt each drawn as for the fine-tuning
    test (``np.random.seed(42); np.random.choice(5, n)`` over every source row, so that a skipped image shifts no
    other image's prompt). Each image is its own cluster of the CIs (the sets have no concepts)."""
    import datasets

    kind = KINDS[name]
    try:
        source = current_ood_source(name)
        ds, report = _ood_rows_for(name, source)
    except DataError as e:
        raise stop(str(e)) from None
    prompt_ids = heldout_prompt_ids(len(report.all_concepts))
    _prepare(kind)
    row_ids = ds.data.column("row_id").to_pylist()
    names = (ds.data.column("image_filename").to_pylist() if "image_filename" in ds.column_names
             else [str(r) for r in row_ids])
    targets = [LABELS[v] for v in ds.data.column("label").to_pylist()]
    columns: dict[str, list[Any]] = {
        "row_id": row_ids, "category": targets, "unsafe_concept": [f"{name}:{n}" for n in names],
        "target": targets, "prompt_id": [prompt_ids[r] for r in row_ids], "task": [name] * len(row_ids)}
    RUN_STATE[name] = {"data": report.to_dict(),
                       "split": {"name": "all", "prompt_seed": TEST_PROMPT_SEED, "n_rows": len(row_ids),
                                 "n_unsafe": targets.count(UNSAFE), "n_safe": targets.count(SAFE)}}
    if report.skipped:
        print(f"unsafeconcepts: skipped {len(report.skipped)} {name} row(s) with unusable images (listed in the "
              "results under breakdown.data.skipped)")
    return datasets.Dataset.from_dict(columns)


def _docs_of(name: str):
    """The ``process_docs`` function of task kind ``name`` (lmms-eval passes the placeholder dataset)."""

    def process_docs(_placeholder) -> Any:
        kind = KINDS[name]
        if kind.source:
            return build_ood_docs(name)
        return build_finetune_docs() if kind.own_target else build_docs(name)

    process_docs.__name__ = process_docs.__qualname__ = f"{name}_docs"
    process_docs.__doc__ = f"The documents of ``unsafeconcepts_{name}`` (``build_docs``)."
    return process_docs


# the YAMLs name these (``process_docs: !function uc_tasks.lmms.docs.<kind>_docs``)
perception_docs = _docs_of("perception")  # one multiple-choice question per image
image_docs = _docs_of("image")  # each image asked each of the 5 alignment prompts, image by image
text_docs = _docs_of("text")  # each concept asked each of the 5 text prompts, on the blank image (paper)
text_only_docs = _docs_of("text_only")  # the same with no image at all
context_safe_docs = _docs_of("context_safe")
context_unsafe_docs = _docs_of("context_unsafe")
context_safe_text_docs = _docs_of("context_safe_text")
context_unsafe_text_docs = _docs_of("context_unsafe_text")
finetune_test_docs = _docs_of("finetune_test")  # 345 unsafe + 345 safe test images, one drawn prompt each
smid_docs = _docs_of("smid")  # SMID, 2,941 images labelled safe / unsafe, one drawn prompt each
nsfw_docs = _docs_of("nsfw")  # the NSFW dataset, 1,800 images labelled safe / unsafe, one drawn prompt each


# lmms-eval asks for each doc's prompt more than once; the distinct prompts are few.
@lru_cache(maxsize=4096)
def _render_cached(name: str, **variables: str) -> str:
    return render(name, **variables)


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The doc's prompt: its kind's template (the ``prompt_id``-th when the kind has several)."""
    kind = KINDS[doc["task"]]
    template = kind.prompts[doc["prompt_id"] - 1] if len(kind.prompts) > 1 else kind.prompts[0]
    variables = {"concept": doc["unsafe_concept"]} if kind.unit == "concept" else {}
    if kind.question == "perception":
        variables["option_str"] = doc["option_str"]
    if kind.context:
        variables["question"] = doc["question"]
    return _render_cached(template, **variables)


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    """The doc's image by its kind's modality: the dataset image (a safe image for a doc whose target is safe),
    the blank image, or none."""
    modality = KINDS[doc["task"]].modality
    if modality == "none":
        return []
    if modality == "blank":
        return [blank_image()]
    ood = KINDS[doc["task"]].source
    if ood:
        source = current_ood_source(ood)
        ds, position = _ood_rows_for(ood, source)[0], _ood_position_of(ood, source)
    elif doc.get("target") == SAFE:
        source = current_safe_source()
        ds, position = _safe_rows_for(source)[0], _safe_position_of(source)
    else:
        source = current_source()
        ds, position = _rows_for(source)[0], _position_of(source)
    image = ds[position[doc["row_id"]]]["image"].convert("RGB")
    image.info[IMAGE_ID_KEY] = f"{source.kind}:{source.location}@{source.revision or ''}#{doc['row_id']}"
    return [image]


_RECORD_FIELDS = ("row_id", "prompt_id", "option_str")


def doc_record(doc: dict[str, Any], answer: Any) -> dict[str, Any]:
    """What the task knows about the doc's question, and the answer (``uc_tasks.scoring.samples``)."""
    record = {"task": doc["task"], "category": doc["category"], "concept": doc["unsafe_concept"]}
    record.update({k: doc[k] for k in _RECORD_FIELDS if k in doc})
    if "correct_option" in doc:
        record["target"] = doc["correct_option"]
    elif "target" in doc:  # the fine-tuning test: safe or unsafe
        record["target"] = doc["target"]
    record["answer"] = answer
    return record


def doc_to_target(doc: dict[str, Any]) -> str:
    """The right answer (lmms-eval logs it): the correct option, or the verdict (``unsafe``).

    A function, not a string in the YAML, which lmms-eval would compile as a Jinja template for every
    document."""
    return KINDS[doc["task"]].target(doc_record(doc, None))
