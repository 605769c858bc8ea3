"""Safe control images: the fine-tuning data's and the fine-tuning test's safe half.

The source is chosen explicitly, as for the main data (``UNSAFECONCEPTS_SAFE_DATA``):
- unset or ``hf``: the hub dataset ``yiting/imagenet_1k_unique_class`` (split ``train``, fields ``image``,
  ``concept`` = the raw ImageNet class string, e.g. "gibbon, Hylobates lar"), in dataset order;
- a folder with ``metadata.jsonl`` (``image_filename``, ``concept``) and the images it names (written by
  ``python -m uc_tasks.data.synth --out DIR --safe`` as ``DIR/imagenet_1k``);
- a ``.parquet`` file with columns ``image``, ``concept``.
Rows whose image cannot be decoded are skipped, counted and reported; a wrong schema stops.
"""

from __future__ import annotations

from pathlib import Path

from uc_tasks import settings
from uc_tasks.data.sources import DataError, DataSource, LoadReport, folder_dataset, keep_decodable

SAFE_HF_DATASET = "yiting/imagenet_1k_unique_class"
ENV_SAFE_DATA = settings.env_name("safe_data")
SAFE_FIELDS = ("image_filename", "concept")
SAFE_CATEGORY = "safe"
"""The category of a safe image in the fine-tuning test's breakdown (beside the 9 unsafe categories)."""


def resolve_safe_source(spec: str | None = None) -> DataSource:
    """Turn ``spec`` (default: ``UNSAFECONCEPTS_SAFE_DATA``) into a checked DataSource."""
    spec = (spec if spec is not None else settings.current().safe_data).strip()
    if spec in ("", "hf", SAFE_HF_DATASET):
        return DataSource("hf", SAFE_HF_DATASET)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "metadata.jsonl").is_file():
            raise DataError(f"{ENV_SAFE_DATA}={spec}: folder has no metadata.jsonl; expected lines with "
                            f"{', '.join(SAFE_FIELDS)} beside the images, e.g. from "
                            "`python -m uc_tasks.data.synth --out DIR --safe` (DIR/imagenet_1k)")
        return DataSource("folder", str(path.resolve()))
    if path.suffix == ".parquet" and path.is_file():
        return DataSource("parquet", str(path.resolve()))
    raise DataError(f"{ENV_SAFE_DATA}={spec}: not a folder with metadata.jsonl nor an existing .parquet file; "
                    f"unset it to use the hub dataset {SAFE_HF_DATASET}")


def _load_hf(source: DataSource):
    import datasets

    try:
        return datasets.load_dataset(source.location, split="train", revision=source.revision)
    except Exception as e:  # the hub raises many types; all mean the same to the user
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"safe images: dataset {source.location} could not be loaded ({text[:160]}); log in with "
                        f"`hf auth login` if needed, or point {ENV_SAFE_DATA} at a local folder or .parquet file") \
            from None


def load_safe_rows(source: DataSource | None = None):
    """All usable safe rows as a ``datasets.Dataset`` (columns ``row_id`` = position in the source, ``image``,
    ``concept``) and a LoadReport (``all_concepts`` lists every source row, skipped ones included)."""
    import datasets

    source = source or resolve_safe_source()
    if source.kind == "hf":
        ds = _load_hf(source)
    elif source.kind == "parquet":
        ds = datasets.Dataset.from_parquet(source.location)
    else:
        ds = folder_dataset(Path(source.location), SAFE_FIELDS, "concept")
    missing = [c for c in ("image", "concept") if c not in ds.column_names]
    if missing:
        raise DataError(f"{source.location}: missing column(s) {', '.join(missing)} (has "
                        f"{', '.join(ds.column_names)}); expected image, concept as in {SAFE_HF_DATASET}")
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    return _validate(ds, source)


def _validate(ds, source: DataSource):
    """Every concept a class name, every image decodable (the rest skipped and reported)."""
    report = LoadReport(source)
    if ds._indices is not None:
        ds = ds.flatten_indices()
    concepts = ds.data.column("concept").to_pylist()
    for i, concept in enumerate(concepts):
        if not isinstance(concept, str) or not concept.strip():
            raise DataError(f"{source.location} row {i}: concept {concept!r} is not a class name")
    report.all_concepts = list(concepts)
    return keep_decodable(ds, source, report, concepts, "concept", "safe images")
