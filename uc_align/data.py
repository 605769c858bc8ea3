"""The paper's fine-tuning data: ``python -m uc_align.data --out DIR [--data ...] [--safe_data ...]``.

Training split (the authors' code, ``uc_tasks.data.splits``): the unsafe images' 80/20 split per concept
(1,222 train), as many safe images (reseeded 80/20 split cut to the unsafe counts), each training image
with one of the 5 image prompts drawn as the authors draw it; the test split is the fine-tuning test
(``unsafeconcepts_finetune_test``: 345 + 345, the ``np.random.seed(42)`` prompts). Each example has

- ``prompt``: the image prompt as a conversation (one user turn; TRL adds the image in front of it);
- ``completion``: the SFT target, the fixed sentence of its label and prompt (``prompts/targets/``,
  concept lower-cased): "No, it is not safe for viewing on social media. The image shows [concept],
  which is considered harmful.";
- ``chosen`` / ``rejected``: the DPO pair, the correct-label sentence and the opposite-label one.

Written to DIR: ``dataset/`` (a HF ``datasets.DatasetDict``, train and test, image bytes embedded),
``train.jsonl`` / ``test.jsonl`` (one line per example: image file, target, concept, prompt, the three
answers, the image's sha256), ``images/`` (the image files the manifests name) and ``manifest.json``
(counts, sources, seeds, template versions and ``sha256``, the hash of both manifests, which every
checkpoint trained on DIR records).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uc_align.config import DataConfig
from uc_tasks.config import parse_config
from uc_tasks.data.safe import SAFE_CATEGORY, load_safe_rows, resolve_safe_source
from uc_tasks.data.sources import DataError, load_rows, resolve_source
from uc_tasks.data.splits import (
    TEST_PROMPT_SEED,
    authors_split,
    heldout_prompt_ids,
    safe_split,
    training_prompt_ids,
)
from uc_tasks.prompts import prompt_version, render, template_version
from uc_tasks.scoring.base import SAFE, UNSAFE

MANIFEST = "manifest.json"
DATASET = "dataset"
SPLIT_FILES = {"train": "train.jsonl", "test": "test.jsonl"}


def target_sentence(label: str, prompt_id: int, concept: str) -> str:
    """The SFT target of ``label`` (safe / unsafe) for image prompt ``prompt_id`` (1-5)."""
    return render(f"targets/{label}_p{prompt_id}", concept=concept)


def conversation(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def example(source: str, row_id: int, concept: str, category: str, prompt_id: int) -> dict[str, Any]:
    """One example without its image: the prompt, the SFT target and the DPO pair."""
    target = SAFE if source == SAFE else UNSAFE
    opposite = UNSAFE if target == SAFE else SAFE
    right, wrong = target_sentence(target, prompt_id, concept), target_sentence(opposite, prompt_id, concept)
    return {"source": source, "row_id": row_id, "concept": concept, "category": category, "target": target,
            "prompt_id": prompt_id, "prompt": conversation("user", render(f"alignment/image_p{prompt_id}")),
            "completion": conversation("assistant", right), "chosen": conversation("assistant", right),
            "rejected": conversation("assistant", wrong)}


def _image_bytes(cell: dict[str, Any]) -> bytes:
    if cell.get("bytes") is not None:
        return cell["bytes"]
    return Path(cell["path"]).read_bytes()


def _suffix(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return "." + (im.format or "png").lower().replace("jpeg", "jpg")


def build(cfg: DataConfig) -> Path:
    """Write the training data described by ``cfg``; returns the manifest written."""
    import datasets

    source = resolve_source(cfg.data)
    safe_source = resolve_safe_source(cfg.safe_data)
    ds, report = load_rows(source)
    safe_ds, safe_report = load_safe_rows(safe_source)
    train, test = authors_split(report.all_concepts, cfg.seed)
    safe_train, safe_test = safe_split(len(safe_report.all_concepts), len(train), len(test), cfg.seed)
    raw = ds.cast_column("image", datasets.Image(decode=False))
    safe_raw = safe_ds.cast_column("image", datasets.Image(decode=False))
    pos = {r: i for i, r in enumerate(ds["row_id"])}
    safe_pos = {r: i for i, r in enumerate(safe_ds["row_id"])}

    def unsafe_rows(rows: Sequence[int], prompts: Sequence[int]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        out = []
        for r, p in zip(rows, prompts, strict=True):
            if r in pos:
                row = raw[pos[r]]
                out.append((example(UNSAFE, r, row["unsafe_concept"], row["category"], p), row["image"]))
        return out

    def safe_rows(rows: Sequence[int], prompts: Sequence[int]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        out = []
        for r, p in zip(rows, prompts, strict=True):
            if r in safe_pos:
                row = safe_raw[safe_pos[r]]
                out.append((example(SAFE, r, row["concept"], SAFE_CATEGORY, p), row["image"]))
        return out

    drawn = training_prompt_ids(len(train) + len(safe_train), cfg.prompt_seed)
    test = sorted(test)  # the fine-tuning test's order (unsafe ascending, then safe)
    heldout = heldout_prompt_ids(len(test) + len(safe_test))
    parts = {
        "train": unsafe_rows(train, drawn[: len(train)]) + safe_rows(safe_train, drawn[len(train):]),
        "test": unsafe_rows(test, heldout[: len(test)]) + safe_rows(safe_test, heldout[len(test):]),
    }
    out = Path(cfg.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    features = datasets.Features({
        **{k: datasets.Value("string") for k in ("source", "concept", "category", "target")},
        "row_id": datasets.Value("int64"), "prompt_id": datasets.Value("int64"),
        **{k: datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
           for k in ("prompt", "completion", "chosen", "rejected")},
        "images": datasets.List(datasets.Image())})
    splits = {}
    for split, rows in parts.items():
        columns: dict[str, list[Any]] = {k: [] for k in features}
        with open(out / SPLIT_FILES[split], "w", encoding="utf-8") as f:
            for i, (ex, cell) in enumerate(rows):
                data = _image_bytes(cell)
                name = f"images/{split}_{i:05d}{_suffix(data)}"
                (out / name).write_bytes(data)
                line = {"index": i, "image": name, "image_sha256": hashlib.sha256(data).hexdigest(), **ex}
                text = json.dumps(line, ensure_ascii=False)
                f.write(text + "\n")
                digest.update(text.encode() + b"\n")
                for k, v in ex.items():
                    columns[k].append(v)
                columns["images"].append([{"bytes": data, "path": None}])
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(out / DATASET))
    manifest = {
        "sha256": digest.hexdigest(),
        "counts": {split: {"n": len(rows), "unsafe": sum(ex["target"] == UNSAFE for ex, _ in rows),
                           "safe": sum(ex["target"] == SAFE for ex, _ in rows)} for split, rows in parts.items()},
        "sources": {"unsafe": report.to_dict(), "safe": safe_report.to_dict()},
        "seeds": {"split": cfg.seed, "train_prompts": cfg.prompt_seed, "test_prompts": TEST_PROMPT_SEED},
        "templates": {"prompts": prompt_version(), "targets": template_version("targets")},
        "files": {"dataset": DATASET, **SPLIT_FILES},
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path


class DataDirError(RuntimeError):
    """A training-data folder that cannot be used; the message says what to pass instead."""


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a folder ``build`` wrote (its hash checked against the manifests on disk)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise DataDirError(f"data={folder}: no {MANIFEST} inside; pass the folder `python -m uc_align.data --out DIR` "
                           "wrote")
    manifest = json.loads(path.read_text())
    digest = hashlib.sha256()
    for name in SPLIT_FILES.values():
        if not (folder / name).is_file():
            raise DataDirError(f"data={folder}: {name} is missing; write the folder again with python -m uc_align.data")
        digest.update((folder / name).read_bytes())
    if digest.hexdigest() != manifest.get("sha256"):
        raise DataDirError(f"data={folder}: train.jsonl / test.jsonl do not match the manifest's hash (edited by "
                           "hand?); write the folder again with python -m uc_align.data")
    return manifest


def load_split(folder: str | Path, split: str = "train") -> Any:
    """One split of the dataset in ``folder`` (``datasets.Dataset``, images decoded lazily)."""
    import datasets

    read_manifest(folder)
    path = Path(folder) / DATASET
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataDirError(f"data={folder}: cannot read {DATASET}/ ({e}); write the folder again with "
                           "python -m uc_align.data") from None
    if split not in ds:
        raise DataDirError(f"data={folder}: no {split!r} split (has {', '.join(ds)}); write the folder again with "
                           "python -m uc_align.data")
    if not len(ds[split]):
        raise DataDirError(f"data={folder}: the {split!r} split is empty; use a larger dataset")
    return ds[split]


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DataConfig, list(sys.argv[1:] if argv is None else argv), __doc__.split("\n\n")[0])
    try:
        path = build(cfg)
    except (DataError, ValueError) as e:
        print(f"uc_align.data: {e}", file=sys.stderr)
        return 2
    manifest = json.loads(path.read_text())
    for split, c in manifest["counts"].items():
        print(f"{split}: {c['n']} examples ({c['unsafe']} unsafe, {c['safe']} safe)")
    print(f"wrote {path.parent} (manifest sha256 {manifest['sha256'][:16]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
