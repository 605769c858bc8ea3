"""The fine-tuning data: the authors' split exactly, the safe images, their prompts."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from conftest import reference_file

from uc_tasks.data.safe import SAFE_HF_DATASET, load_safe_rows, resolve_safe_source
from uc_tasks.data.sources import DataError
from uc_tasks.data.splits import (
    authors_split,
    finetune_split,
    heldout_prompt_ids,
    safe_split,
    training_prompt_ids,
)
from uc_tasks.data.synth import SAFE_FOLDER, balanced_safe_count, write_replica
from uc_tasks.data.taxonomy import load_taxonomy


def _authors_test_ids(rows: list[dict]) -> list[int]:
    """The authors' code, as it runs: one global seed, concepts in sorted order, the state carried over."""
    images: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        images.setdefault(r["unsafe_concept"], []).append(i)
    state = random.getstate()
    try:
        random.seed(2024)
        test = []
        for concept in sorted(images):
            shuffled = images[concept][:]
            random.shuffle(shuffled)
            test += shuffled[int(0.8 * len(shuffled)):]
    finally:
        random.setstate(state)
    return sorted(test)


def test_split_reproduces_the_authors_345_test_images() -> None:
    rows = [json.loads(x) for x in reference_file("safervlm/metadata.jsonl").read_text().splitlines() if x.strip()]
    train, test = finetune_split([r["unsafe_concept"] for r in rows])
    assert (len(train), len(test)) == (1222, 345)
    assert test == _authors_test_ids(rows)
    assert sorted(train + test) == list(range(len(rows)))


def test_split_matches_the_images_of_the_authors_context_answers() -> None:
    """The authors ran the context questions on their 345 fine-tuning test images: the same images."""
    rows = [json.loads(x) for x in reference_file("safervlm/metadata.jsonl").read_text().splitlines() if x.strip()]
    answers = json.loads(reference_file("safervlm/answers/sft_context_safe.json").read_text())
    _, test = finetune_split([r["unsafe_concept"] for r in rows])
    assert {Path(rows[i]["image_filename"]).name for i in test} == {Path(a["image_fname"]).name for a in answers}


def test_the_random_state_carries_over_from_concept_to_concept() -> None:
    """Two concepts of equal size get different permutations (a reseed per concept would give the same)."""
    concepts = ["b"] * 10 + ["a"] * 10
    train, test = authors_split(concepts)
    rng = random.Random(2024)
    a, b = list(range(10, 20)), list(range(10))
    rng.shuffle(a)  # "a" sorts first
    rng.shuffle(b)
    assert train == a[:8] + b[:8] and test == a[8:] + b[8:]
    assert [x - 10 for x in a] != b


def test_split_orders_concepts_by_code_point() -> None:
    concepts = ["Zebra"] * 5 + ["apple"] * 5  # "Zebra" < "apple" in byte order
    train, _ = authors_split(concepts)
    assert set(train[:4]) <= set(range(5))


def test_safe_split_is_reseeded_shuffled_and_cut_to_the_unsafe_counts() -> None:
    order = list(range(1721))
    random.Random(2024).shuffle(order)
    train, test = safe_split(1721, 1222, 345)
    assert train == order[:1376][:1222] and test == order[1376:][:345]
    assert not set(train) & set(test)
    with pytest.raises(ValueError, match="the safe images are too few: 1000 give 800 train / 200 test.*at least 1725"):
        safe_split(1000, 1222, 345)


def test_prompts_of_the_training_and_test_images() -> None:
    np = pytest.importorskip("numpy")
    np.random.seed(42)
    assert heldout_prompt_ids(690) == [int(p) + 1 for p in np.random.choice(5, 690)]
    rng = random.Random(2024)
    assert training_prompt_ids(50) == [rng.sample([1, 2, 3, 4, 5], 1)[0] for _ in range(50)]
    assert set(Counter(training_prompt_ids(2444))) == {1, 2, 3, 4, 5}


def test_balanced_safe_count() -> None:
    tax = load_taxonomy()
    n_train = sum(int(0.8 * n) for n in tax.concept_count.values())
    assert balanced_safe_count(n_train, 1567 - n_train) == 1721
    safe_split(1721, 1222, 345)
    with pytest.raises(ValueError):
        safe_split(1720, 1222, 345)


def test_synthetic_safe_images_load_from_folder_and_parquet(tmp_path: Path) -> None:
    n = write_replica(tmp_path, per_concept=2, size=24, parquet=True, safe=True)
    folder, parquet = tmp_path / SAFE_FOLDER, tmp_path / f"{SAFE_FOLDER}.parquet"
    lines = (tmp_path / "metadata.jsonl").read_text().splitlines()
    n_train = sum(int(0.8 * c) for c in Counter(json.loads(x)["unsafe_concept"] for x in lines).values())
    for spec in (folder, parquet):
        ds, report = load_safe_rows(resolve_safe_source(str(spec)))
        assert len(ds) == report.n_rows == balanced_safe_count(n_train, n - n_train)
        assert {"row_id", "image", "concept"} <= set(ds.column_names)
        assert ds[0]["concept"] == "tench, Tinca tinca"
        pixels = ds[0]["image"].convert("RGB").getpixel((0, 0))
        assert min(pixels) >= 180, "safe images are near white"


def test_safe_source_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSAFECONCEPTS_SAFE_DATA", raising=False)
    assert resolve_safe_source().location == SAFE_HF_DATASET
    monkeypatch.setenv("UNSAFECONCEPTS_SAFE_DATA", str(tmp_path))
    with pytest.raises(DataError, match="UNSAFECONCEPTS_SAFE_DATA=.*folder has no metadata.jsonl"):
        resolve_safe_source()
    with pytest.raises(DataError, match="not a folder with metadata.jsonl nor an existing .parquet"):
        resolve_safe_source(str(tmp_path / "missing.parquet"))
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"image_filename": "0.png"}) + "\n")
    with pytest.raises(DataError, match="missing field\\(s\\) concept"):
        load_safe_rows(resolve_safe_source(str(tmp_path)))
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"image_filename": "0.png", "concept": "hen"}) + "\n")
    with pytest.raises(DataError, match="no usable safe images \\(1 skipped\\)"):
        load_safe_rows(resolve_safe_source(str(tmp_path)))
