"""The out-of-domain safety sets the paper evaluates fine-tuned models on: SMID (``yiting/SMID``, 2,941 images) and
the NSFW dataset (``yiting/NSFWDataset``, 1,800), each image labelled 0 safe / 1 unsafe.

The source is chosen explicitly, as for the main data (``UNSAFECONCEPTS_SMID_DATA``, ``UNSAFECONCEPTS_NSFW_DATA``):
- unset or ``hf``: the hub dataset (split ``train``, fields ``image`` and ``label``), in dataset order;
- a folder with ``metadata.jsonl`` (``image_filename``, ``label``) and the images it names (written by
  ``python -m uc_tasks.data.synth --out DIR --ood N`` as ``DIR/smid`` and ``DIR/nsfw``);
- a ``.parquet`` file with columns ``image``, ``label``.
Rows whose image cannot be decoded are skipped, counted and reported; a wrong schema or a label other than
0 / 1 stops with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uc_tasks import settings
from uc_tasks.data.sources import DataError, DataSource, LoadReport, folder_dataset, keep_decodable
from uc_tasks.scoring.base import SAFE, UNSAFE

LABELS = {0: SAFE, 1: UNSAFE}
"""The sets' labels and the verdict that is right for each."""
OOD_FIELDS = ("image_filename", "label")


@dataclass(frozen=True)
class OODSet:
    """One out-of-domain set: its name (the task kind), hub dataset, setting and documented size."""

    name: str
    hub: str
    setting: str
    size: int

    @property
    def env(self) -> str:
        return settings.env_name(self.setting)


SETS = {s.name: s for s in (OODSet("smid", "yiting/SMID", "smid_data", 2941),
                            OODSet("nsfw", "yiting/NSFWDataset", "nsfw_data", 1800))}


def resolve_ood_source(name: str, spec: str | None = None) -> DataSource:
    """Turn ``spec`` (default: the set's variable) into a checked DataSource."""
    ood = SETS[name]
    spec = (spec if spec is not None else getattr(settings.current(), ood.setting)).strip()
    if spec in ("", "hf", ood.hub):
        return DataSource("hf", ood.hub)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "metadata.jsonl").is_file():
            raise DataError(f"{ood.env}={spec}: folder has no metadata.jsonl; expected lines with "
                            f"{', '.join(OOD_FIELDS)} (0 safe / 1 unsafe) beside the images, e.g. from "
                            f"`python -m uc_tasks.data.synth --out DIR --ood 40` (DIR/{name})")
        return DataSource("folder", str(path.resolve()))
    if path.suffix == ".parquet" and path.is_file():
        return DataSource("parquet", str(path.resolve()))
    raise DataError(f"{ood.env}={spec}: not a folder with metadata.jsonl nor an existing .parquet file; "
                    f"unset it to use the hub dataset {ood.hub}")


def _load_hf(ood: OODSet, source: DataSource):
    import datasets

    try:
        return datasets.load_dataset(source.location, split="train", revision=source.revision)
    except Exception as e:  # the hub raises many types; all mean the same to the user
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        gated = any(k in text.lower() for k in ("gated", "401", "403", "authenticat", "access"))
        what = "is gated and this account has no access" if gated else f"could not be loaded ({text[:160]})"
        raise DataError(f"{ood.name}: dataset {source.location} {what}: accept its terms on "
                        f"https://huggingface.co/datasets/{ood.hub} and log in with `hf auth login` (or set HF_TOKEN), "
                        f"or point {ood.env} at a local folder or .parquet file") from None


def load_ood_rows(name: str, source: DataSource | None = None):
    """All usable rows of set ``name`` as a ``datasets.Dataset`` (columns ``row_id`` = position in the source,
    ``image``, ``label`` 0 / 1, ``image_filename`` for a folder) and a LoadReport."""
    import datasets

    ood = SETS[name]
    source = source or resolve_ood_source(name)
    if source.kind == "hf":
        ds = _load_hf(ood, source)
    elif source.kind == "parquet":
        ds = datasets.Dataset.from_parquet(source.location)
    else:
        ds = folder_dataset(Path(source.location), OOD_FIELDS, "label")
    missing = [c for c in ("image", "label") if c not in ds.column_names]
    if missing:
        raise DataError(f"{source.location}: missing column(s) {', '.join(missing)} (has "
                        f"{', '.join(ds.column_names)}); expected image, label (0 safe / 1 unsafe) as in {ood.hub}")
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    if ds._indices is not None:
        ds = ds.flatten_indices()
    labels = ds.data.column("label").to_pylist()
    for i, label in enumerate(labels):
        if label not in LABELS or isinstance(label, bool):
            raise DataError(f"{source.location} row {i}: label {label!r} is not 0 (safe) or 1 (unsafe)")
    report = LoadReport(source)
    report.all_concepts = [LABELS[v] for v in labels]
    return keep_decodable(ds, source, report, report.all_concepts, "label", f"{name} images")
