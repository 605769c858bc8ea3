"""Data sources and bad input: each problem is one clear line or a counted, reported skip."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env, lmms_eval, run_tasks

from uc_tasks.data.sources import DataError, load_rows, resolve_source
from uc_tasks.data.splits import split_from_env
from uc_tasks.data.synth import write_replica
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.lmms.docs import doc_to_visual


def test_taxonomy_is_the_papers() -> None:
    tax = load_taxonomy()
    assert len(tax.categories) == 9 and len(tax.concepts) == 75 and tax.n_images == 1567
    assert len(tax.extra_distractors) == 12


def test_full_replica_has_the_real_counts(tmp_path: Path) -> None:
    n = write_replica(tmp_path, size=16)
    rows = [json.loads(x) for x in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert n == len(rows) == 1567
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["unsafe_concept"]] = counts.get(r["unsafe_concept"], 0) + 1
    assert counts == load_taxonomy().concept_count
    assert len(list((tmp_path / "images").iterdir())) == 1567


def test_folder_and_parquet_give_the_same_rows(small_replica: Path) -> None:
    folder, report = load_rows(resolve_source(str(small_replica)))
    parquet, _ = load_rows(resolve_source(str(small_replica / "unsafeconcepts.parquet")))
    assert report.to_dict()["n_skipped"] == 0 and len(folder) == len(parquet) == 147
    assert folder["unsafe_concept"] == parquet["unsafe_concept"] and folder["category"] == parquet["category"]
    assert folder[0]["image"].size == parquet[0]["image"].size == (32, 32)


def test_blank_and_no_image() -> None:
    (img,) = doc_to_visual({"task": "text"})
    assert img.size == (1000, 1000) and img.mode == "RGB" and img.getextrema() == ((255, 255),) * 3
    assert doc_to_visual({"task": "text_only"}) == []


@pytest.fixture()
def damaged_replica(tmp_path: Path, small_replica: Path) -> Path:
    copy = tmp_path / "damaged"
    shutil.copytree(small_replica, copy)
    (copy / "images" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (copy / "images" / "7.png").unlink()
    return copy


def test_corrupted_and_missing_images_are_skipped_and_reported(damaged_replica: Path) -> None:
    ds, report = load_rows(resolve_source(str(damaged_replica)))
    info = report.to_dict()
    assert len(ds) == 145 and info["n_skipped"] == 2
    assert [s["row_id"] for s in info["skipped"]] == [3, 7]
    assert "cannot be decoded" in info["skipped"][0]["reason"] and "not found" in info["skipped"][1]["reason"]
    assert 3 not in ds["row_id"] and 7 not in ds["row_id"]


@pytest.mark.slow
def test_skips_reach_the_results(tmp_path: Path, damaged_replica: Path) -> None:
    run = run_tasks("unsafeconcepts_perception", "dummy", "response=A", tmp_path / "out",
                    clean_env(UNSAFECONCEPTS_DATA=str(damaged_replica)))
    b = run.metric("unsafeconcepts_perception", "breakdown")
    assert b["overall"]["n"] == 145 and b["data"]["n_skipped"] == 2
    assert "skipped 2 row(s)" in run.proc.stdout + run.proc.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param('{"image": "images/0.png", "category": "Hate", "unsafe_concept": "Swastika"}',
                     r"missing field\(s\) image_filename", id="wrong-schema"),
        pytest.param('{"image_filename": "images/0.png", "category": "Hate", "unsafe_concept": "Kittens"}',
                     "concept 'Kittens' is not one of the 75", id="unknown-concept"),
        pytest.param('{"image_filename": "images/0.png", "category": "Violence", "unsafe_concept": "Swastika"}',
                     "belongs to category 'Hate', not 'Violence'", id="wrong-category"),
        pytest.param("not json", "not valid JSON", id="not-json"),
    ],
)
def test_bad_metadata(tmp_path: Path, small_replica: Path, line: str, message: str) -> None:
    shutil.copytree(small_replica / "images", tmp_path / "images")
    (tmp_path / "metadata.jsonl").write_text(line + "\n")
    with pytest.raises(DataError, match=message):
        load_rows(resolve_source(str(tmp_path)))


def test_bad_source_values(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder has no metadata.jsonl"):
        resolve_source(str(tmp_path))
    with pytest.raises(DataError, match="not a folder with metadata.jsonl nor an existing .parquet"):
        resolve_source(str(tmp_path / "nope.parquet"))


@pytest.mark.slow
def test_cli_stops_with_one_line_on_a_wrong_schema(tmp_path: Path, small_replica: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(small_replica / "images", bad / "images")
    (bad / "metadata.jsonl").write_text('{"file": "images/0.png", "category": "Hate", "unsafe_concept": "Swastika"}\n')
    proc = lmms_eval(["--model", "dummy", "--tasks", "unsafeconcepts_image", "--output_path", str(tmp_path / "o")],
                     clean_env(UNSAFECONCEPTS_DATA=str(bad)), tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("unsafeconcepts: ") and "missing field(s) image_filename" in last
    assert "Traceback" not in proc.stderr + proc.stdout


class _GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as the Hugging Face Hub does for a gated repo without access."""

    def _gated(self) -> None:
        body = b'{"error": "Access to dataset yiting/UnsafeConcepts is restricted."}'
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to dataset yiting/UnsafeConcepts is restricted.")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = _gated

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def gated_hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
def test_cli_gated_dataset_says_what_to_do(tmp_path: Path, gated_hub: str) -> None:
    env = clean_env(HF_ENDPOINT=gated_hub, HF_HOME=str(tmp_path / "hf"))
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        env.pop(k, None)
    proc = lmms_eval(["--model", "dummy", "--tasks", "unsafeconcepts_perception", "--output_path", str(tmp_path / "o")],
                     env, tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "is gated and this account has no access" in last
    assert "accept the data use agreement" in last and "HF_TOKEN" in last and "UNSAFECONCEPTS_DATA" in last


@pytest.mark.slow
def test_cli_offline_without_local_copy(tmp_path: Path) -> None:
    proc = lmms_eval(["--model", "dummy", "--tasks", "unsafeconcepts_text", "--output_path", str(tmp_path / "o")],
                     clean_env(), tmp_path)
    assert proc.returncode != 0
    assert "could not be loaded" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_cli_unknown_scorer_stops_the_run(tmp_path: Path, small_replica: Path) -> None:
    proc = lmms_eval(["--model", "dummy", "--tasks", "unsafeconcepts_text", "--output_path", str(tmp_path / "o")],
                     clean_env(UNSAFECONCEPTS_DATA=str(small_replica), UNSAFECONCEPTS_SCORER="rules"), tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "unknown scorer 'rules'" in last and "Did you mean 'rule'" in last
    assert not list((tmp_path / "o").rglob("*_results.json"))


def test_bad_split_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNSAFECONCEPTS_SPLIT", "test")
    with pytest.raises(ValueError, match="UNSAFECONCEPTS_SPLIT='test' is not one of all, finetune_train"):
        split_from_env()
