"""Load and validate UnsafeConcepts rows from the gated hub dataset, a local folder or a parquet file.

The source is chosen explicitly, never by fallback:
- ``UNSAFECONCEPTS_DATA`` unset or ``hf``: the gated Hugging Face dataset ``yiting/UnsafeConcepts``
  (``UNSAFECONCEPTS_REVISION`` pins a revision);
- a folder with ``metadata.jsonl`` (``image_filename``, ``category``, ``unsafe_concept``) and the
  image files it names (the authors' layout, also written by ``python -m uc_tasks.data.synth``);
- a ``.parquet`` file with columns ``image``, ``category``, ``unsafe_concept``.
Rows whose image cannot be decoded are skipped, counted and reported; a wrong schema stops.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from uc_tasks import settings
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.jsonl import read_jsonl

HF_DATASET = "yiting/UnsafeConcepts"
ENV_DATA = settings.env_name("data")
ENV_REVISION = settings.env_name("revision")
METADATA_FIELDS = ("image_filename", "category", "unsafe_concept")
_HF_HELP = (
    f"accept the data use agreement at https://huggingface.co/datasets/{HF_DATASET}, then log in with "
    "`hf auth login` (or set HF_TOKEN); or point UNSAFECONCEPTS_DATA at a local copy "
    "(a folder with metadata.jsonl, or a .parquet file)"
)


class DataError(RuntimeError):
    """The data cannot be used as given; the message says what to do."""


@dataclass(frozen=True)
class DataSource:
    """Where the rows come from (recorded in every results file)."""

    kind: str  # "hf" | "folder" | "parquet"
    location: str
    revision: str | None = None


@dataclass
class LoadReport:
    """What loading did: the source, row counts and every skipped row with its reason."""

    source: DataSource
    n_rows: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    all_concepts: list[str] = field(default_factory=list, repr=False)  # every source row, skipped included

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": asdict(self.source),
            "n_rows": self.n_rows,
            "n_skipped": len(self.skipped),
            "skipped": self.skipped,
        }


def resolve_source(spec: str | None = None, revision: str | None = None) -> DataSource:
    """Turn ``spec`` (default: the ``UNSAFECONCEPTS_DATA`` variable) into a checked DataSource."""
    now = settings.current()
    spec = (spec if spec is not None else now.data).strip()
    revision = revision if revision is not None else (now.revision or None)
    if spec in ("", "hf", HF_DATASET):
        return DataSource("hf", HF_DATASET, revision)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "metadata.jsonl").is_file():
            raise DataError(
                f"{ENV_DATA}={spec}: folder has no metadata.jsonl; expected the authors' layout "
                "(metadata.jsonl + images/), e.g. from `python -m uc_tasks.data.synth --out DIR`"
            )
        return DataSource("folder", str(path.resolve()))
    if path.suffix == ".parquet" and path.is_file():
        return DataSource("parquet", str(path.resolve()))
    raise DataError(
        f"{ENV_DATA}={spec}: not a folder with metadata.jsonl nor an existing .parquet file; "
        "unset it to use the Hugging Face dataset"
    )


def _read_metadata(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, row in read_jsonl(path, DataError):
        missing = [f for f in METADATA_FIELDS if f not in row]
        if missing:
            raise DataError(
                f"{path}:{n}: missing field(s) {', '.join(missing)}; each line needs "
                f"{', '.join(METADATA_FIELDS)} (the authors' metadata.jsonl schema)"
            )
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def folder_dataset(root: Path, fields: tuple[str, ...] | list[str], column: str):
    """A local image folder as a ``datasets.Dataset``: ``root/metadata.jsonl`` (one line per image, with every
    field of ``fields``) gives ``image`` (the path), ``image_filename`` and ``column`` (the label field)."""
    import datasets

    meta = []
    for n, row in read_jsonl(root / "metadata.jsonl", DataError):
        missing = [f for f in fields if f not in row]
        if missing:
            raise DataError(f"{root / 'metadata.jsonl'}:{n}: missing field(s) {', '.join(missing)}; each line "
                            f"needs {', '.join(fields)}")
        meta.append(row)
    if not meta:
        raise DataError(f"{root / 'metadata.jsonl'}: no rows")
    return datasets.Dataset.from_dict({"image": [str(root / r["image_filename"]) for r in meta],
                                       "image_filename": [r["image_filename"] for r in meta],
                                       column: [r[column] for r in meta]})


def _load_hf(source: DataSource):
    import datasets

    try:
        ds = datasets.load_dataset(source.location, split="train", revision=source.revision)
    except Exception as e:  # the hub raises many types; all mean the same to the user
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        gated = any(k in text.lower() for k in ("gated", "401", "403", "authenticat", "access"))
        what = "is gated and this account has no access" if gated else f"could not be loaded ({text[:160]})"
        raise DataError(f"dataset {source.location} {what}: {_HF_HELP}") from None
    return ds


def _check_schema(columns: list[str], where: str) -> None:
    missing = [c for c in ("image", "category", "unsafe_concept") if c not in columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)} (has {', '.join(columns)}); "
            "expected image, category, unsafe_concept as in yiting/UnsafeConcepts"
        )


def image_problem(value: dict[str, Any] | None) -> str | None:
    """Why an undecoded image cell cannot be used, or None if it decodes."""
    from PIL import Image, UnidentifiedImageError

    if not value or (value.get("bytes") is None and not value.get("path")):
        return "no image"
    try:
        src = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
        with Image.open(src) as im:
            im.verify()
    except FileNotFoundError:
        return f"image file not found: {value.get('path')}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return f"image cannot be decoded ({type(e).__name__})"
    return None


def load_rows(source: DataSource | None = None):
    """All valid rows as a ``datasets.Dataset`` (image decoded lazily) and a LoadReport.

    Columns: ``row_id`` (index in the source), ``image``, ``category``, ``unsafe_concept`` and, for
    folder sources, ``image_filename``.
    """
    import datasets

    source = source or resolve_source()
    if source.kind == "hf":
        ds = _load_hf(source)
        _check_schema(ds.column_names, source.location)
    elif source.kind == "parquet":
        ds = datasets.Dataset.from_parquet(source.location)
        _check_schema(ds.column_names, source.location)
        if not isinstance(ds.features["image"], datasets.Image):
            ds = ds.cast_column("image", datasets.Image())
    else:
        root = Path(source.location)
        meta = _read_metadata(root / "metadata.jsonl")
        ds = datasets.Dataset.from_dict(
            {
                "image": [str(root / r["image_filename"]) for r in meta],
                "image_filename": [r["image_filename"] for r in meta],
                "category": [r["category"] for r in meta],
                "unsafe_concept": [r["unsafe_concept"] for r in meta],
            }
        ).cast_column("image", datasets.Image())
    return validate_rows(ds, source)


def validate_rows(ds, source: DataSource):
    """Check concepts against the taxonomy and every image; drop (and report) undecodable rows."""

    tax = load_taxonomy()
    report = LoadReport(source)
    if ds._indices is not None:
        ds = ds.flatten_indices()
    table = ds.data  # read columns straight from Arrow: row-by-row iteration formats every row
    concepts = table.column("unsafe_concept").to_pylist()
    report.all_concepts = list(concepts)
    for i, (concept, category) in enumerate(zip(concepts, table.column("category").to_pylist(), strict=True)):
        if concept not in tax.concept_category:
            raise DataError(f"{source.location} row {i}: concept {concept!r} is not one of the 75 UnsafeConcepts")
        if tax.concept_category[concept] != category:
            raise DataError(
                f"{source.location} row {i}: concept {concept!r} belongs to category "
                f"{tax.concept_category[concept]!r}, not {category!r}"
            )
    return keep_decodable(ds, source, report, concepts, "unsafe_concept", "rows")


def keep_decodable(ds, source: DataSource, report: LoadReport, concepts: list[str], concept_key: str, what: str):
    """Number the rows (``row_id``: index in the source) and drop those whose image cannot be decoded,
    each listed in ``report.skipped`` with its reason; none left is an error."""
    import datasets

    raw = ds.cast_column("image", datasets.Image(decode=False)).data.column("image").to_pylist()
    keep = []
    for i, cell in enumerate(raw):
        problem = image_problem(cell)
        if problem is None:
            keep.append(i)
        else:
            report.skipped.append({"row_id": i, concept_key: concepts[i], "reason": problem})
    ds = ds.add_column("row_id", list(range(len(ds))))
    if report.skipped:
        ds = ds.select(keep)
    report.n_rows = len(ds)
    if not len(ds):
        raise DataError(f"{source.location}: no usable {what} ({len(report.skipped)} skipped)")
    return ds, report
