"""``python -m uc_tasks.leaderboard``: a submission is recomputed from its answers; tampered copies are
rejected, each with its reason; ``build`` ranks the accepted ones beside the paper's published rows.

The submission is the real lmms-eval run that ``tests/test_report.py`` makes (one per session).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_report import cli_run

from uc_tasks.leaderboard import REASONS, main
from uc_tasks.leaderboard.build import PUBLISHED, REPORTED, build
from uc_tasks.leaderboard.validate import _difference
from uc_tasks.runs import load_summaries

REPO = Path(__file__).resolve().parents[1]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


# --- fast tier ---------------------------------------------------------------------------------


@pytest.mark.parametrize("recorded, recomputed, found", [
    ({"a": 0.5, "b": {"c": [1, 2]}}, {"a": 0.5, "b": {"c": [1, 2]}}, None),
    ({"a": 0.5 + 1e-12}, {"a": 0.5}, None),
    ({"a": 0.51}, {"a": 0.5}, "x.a is 0.51 in the submission but 0.5 recomputed"),
    ({"b": {}}, {"b": {"c": 1}}, "x.b.c is missing"),
    ({"a": None}, {"a": 0.5}, "x.a is None"),
    ({"a": [1, 2]}, {"a": [1, 2, 3]}, "x.a has 2 items, recomputed 3"),
    ({"a": "3"}, {"a": 3}, "x.a is '3'"),
    ({"a": 1, "extra": 9}, {"a": 1}, None),
], ids=["equal", "rounding", "edited", "missing", "undefined", "short-list", "type", "extra-key"])
def test_difference(recorded: Any, recomputed: Any, found: str | None) -> None:
    got = _difference(recorded, recomputed, "x", 1e-9)
    assert (got is None) if found is None else (got is not None and got.startswith(found)), got


def test_build_with_no_submission_lists_the_published_rows(tmp_path: Path) -> None:
    md, page = build(tmp_path)
    text, html = md.read_text(), page.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and REPORTED in line]
    assert len(rows) == len(PUBLISHED) == 8
    llava = next(r for r in rows if "LLaVA-7B" in r)
    assert "| 1 | LLaVA-7B | about 0.370 | 0.945 | about +0.575 | 0.932 |" in llava
    assert "| - | GPT-4V | not given | 0.915 | not given | 0.968 |" in text
    assert 'class="sortable"' in html and html.count(f"<td>{REPORTED}") == 8 and "data:image/png;base64," in html


def test_committed_leaderboard_is_current(tmp_path: Path) -> None:
    """results/leaderboard.md is what build writes from results/submissions (run build after accepting)."""
    shutil.copytree(REPO / "results", tmp_path / "results")
    md, _ = build(tmp_path / "results", verify=False)
    assert (REPO / "results" / "leaderboard.md").read_text() == md.read_text(), \
        "results/leaderboard.md is stale: run python -m uc_tasks.leaderboard build"


@pytest.mark.parametrize("argv, rc, message", [
    ([], 2, "usage: python -m uc_tasks.leaderboard"),
    (["validate", "/nonexistent/run"], 1, "rejected (malformed"),
    (["validate", "A", "B"], 2, "validate takes one submission, got 2"),
], ids=["no-command", "missing", "two"])
def test_command_line_errors(argv: list[str], rc: int, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = run_main(argv, capsys)
    assert got == rc and len(err.strip().splitlines()) == 1 and message in err, err


# --- slow tier: the real run and tampered copies -----------------------------------------------


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory, small_replica: Path) -> Path:
    return cli_run(tmp_path_factory, small_replica)


@pytest.fixture
def current_data(small_replica: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The validator's current data source is the one the run read."""
    for var in ("UNSAFECONCEPTS_REVISION", "UNSAFECONCEPTS_SPLIT", "UNSAFECONCEPTS_SCORER", "UNSAFECONCEPTS_SEED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UNSAFECONCEPTS_DATA", str(small_replica))


def _results(folder: Path) -> Path:
    return next(folder.glob("*_results.json"))


def _samples(folder: Path, task: str) -> Path:
    return next(folder.glob(f"*_samples_unsafeconcepts_{task}.jsonl"))


def _edit_results(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = _results(folder)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _edit_samples(folder: Path, task: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    path = _samples(folder, task)
    lines = change([json.loads(line) for line in path.read_text().splitlines()])
    path.write_text("".join(json.dumps(s) + "\n" for s in lines))


def _every_task(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for task in ("perception", "image", "text"):
            b = data["results"][f"unsafeconcepts_{task}"]["breakdown,none"]
            *path, last = key.split(".")
            for k in path:
                b = b[k]
            b[last] = value
    return change


def _edited_number(folder: Path) -> None:
    _edit_results(folder, lambda d: d["results"]["unsafeconcepts_image"].update(
        {"accuracy,none": d["results"]["unsafeconcepts_image"]["accuracy,none"] + 0.01}))


def _edited_category(folder: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["results"]["unsafeconcepts_text"]["breakdown,none"]["per_category"]["Hate"]["accuracy"] = 1.0
    _edit_results(folder, change)


def _dropped_lines(folder: Path) -> None:
    _edit_samples(folder, "image", lambda lines: lines[:100] + lines[103:])


def _smuggled_failure(folder: Path) -> None:
    """A request that got no answer, its failure marker counted as an 'unsafe' answer (a hit)."""
    def change(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        s = next(s for s in lines if s["breakdown"].get("failed"))
        s["breakdown"].pop("failed")
        s["breakdown"].update(label="unsafe", hit=True, reason="opens with 'no'")
        s.update({m: "hit" for m in ("accuracy", "accuracy_strict", "na_rate", "modality_gap")})
        return lines
    _edit_samples(folder, "image", change)


def _malformed_results(folder: Path) -> None:
    path = _results(folder)
    path.write_text(path.read_text()[:5000])


def _malformed_samples(folder: Path) -> None:
    path = _samples(folder, "text")
    path.write_text(path.read_text() + '{"doc_id": 9999, "breakdown": \n')


def _missing_samples(folder: Path) -> None:
    _samples(folder, "perception").unlink()


TAMPERED = {
    "edited-number": (_edited_number, "numbers", "unsafeconcepts_image.accuracy is"),
    "edited-category": (_edited_category, "numbers", "per_category.Hate.accuracy is 1.0 in the submission"),
    "dropped-lines": (_dropped_lines, "short", "unsafeconcepts_image: 732 of 735 samples"),
    "prompt-version": (lambda f: _edit_results(f, _every_task("provenance.prompts.version", "1")), "prompt_version",
                       "prompt version {'version': '1'"),
    "dataset-revision": (lambda f: _edit_results(f, _every_task("data.source.revision", "v0.9")), "dataset",
                         "@v0.9; the current data source is folder:"),
    "scorer-version": (lambda f: _edit_results(f, _every_task("scorer.version", "1")), "scorer",
                       "'version': '1'"),
    "failure-marker": (_smuggled_failure, "failure_marker", "the answer is a failure marker (error: no answer)"),
    "malformed-json": (_malformed_results, "malformed", "not valid JSON"),
    "malformed-samples": (_malformed_samples, "malformed", "not valid JSON"),
    "missing-samples": (_missing_samples, "malformed", "no samples of unsafeconcepts_perception"),
}


@pytest.mark.slow
def test_a_real_run_validates_is_accepted_and_ranked(submission: Path, current_data: None, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    results_dir = tmp_path / "results"
    rc, out, err = run_main(["validate", str(submission), "--accept", "replay-model", "--model",
                             "Replayed answers (test)", "--results-dir", str(results_dir)], capsys)
    assert rc == 0, err
    summary = load_summaries(submission)
    image = summary["tasks"]["image"]["ci"]["accuracy"]
    assert f"valid: image {image['estimate']:.3f} [{image['ci_low']:.3f}, {image['ci_high']:.3f}]" in out
    folder = results_dir / "submissions" / "replay-model"
    record = json.loads((folder / "submission.json").read_text())
    assert record["model"] == "Replayed answers (test)" and record["scores"]["image"] == image
    assert sorted(p.name.split("_samples_")[-1] for p in folder.glob("*_samples_*")) == [
        "unsafeconcepts_image.jsonl", "unsafeconcepts_perception.jsonl", "unsafeconcepts_text.jsonl"]

    rc, out, err = run_main(["build", "--results-dir", str(results_dir)], capsys)  # re-validates the accepted copy
    assert rc == 0, err
    md = (results_dir / "leaderboard.md").read_text()
    html = (results_dir / "leaderboard.html").read_text()
    ours = next(line for line in md.splitlines() if "Replayed answers (test)" in line)
    gap = summary["group"]["modality_gap"]["ci"]
    assert f"{image['estimate']:.3f} [{image['ci_low']:.3f}, {image['ci_high']:.3f}]" in ours
    assert f"{gap['estimate']:+.3f} [{gap['ci_low']:+.3f}, {gap['ci_high']:+.3f}]" in ours
    assert "submitted as replay-model" in ours and REPORTED not in ours
    assert ours.startswith("| 1 |"), "ranked first: its image score is above the paper's LLaVA-7B (about 0.37)"
    assert sum(REPORTED in line for line in md.splitlines() if line.startswith("| ")) == len(PUBLISHED)
    assert "Replayed answers (test)" in html and html.count(f"<td>{REPORTED}") == len(PUBLISHED)

    rc, _, err = run_main(["validate", str(submission), "--accept", "replay-model", "--results-dir",
                           str(results_dir)], capsys)
    assert rc == 2 and "exists already" in err


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_copy_is_rejected_with_its_reason(case: str, submission: Path, current_data: None,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper, reason, message = TAMPERED[case]
    copy = tmp_path / "copy"
    shutil.copytree(submission, copy)
    tamper(copy)
    rc, out, err = run_main(["validate", str(copy)], capsys)
    assert rc == 1 and not out, (out, err)
    line = err.strip()
    assert len(line.splitlines()) == 1, line
    assert line.startswith(f"unsafeconcepts leaderboard: rejected ({reason}: {REASONS[reason]}): "), line
    assert message in line, line


@pytest.mark.slow
def test_another_current_data_source_rejects(submission: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("UNSAFECONCEPTS_DATA", raising=False)  # the current source: the hub dataset
    rc, _, err = run_main(["validate", str(submission)], capsys)
    assert rc == 1 and "rejected (dataset" in err and "the current data source is hf:yiting/UnsafeConcepts" in err
