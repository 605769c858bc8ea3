"""``python -m uc_tasks.report``: a self-contained HTML page with matplotlib plots from finished runs.

The runs come from the real lmms-eval CLI (``from_log`` replay of chosen answers on the small replica:
hits, misses, N/A, refusals and requests without an answer, varied by concept so that every chart has
something to show); ``cli_run`` makes one per session and ``tests/test_leaderboard.py`` reads it too.
The page is opened in headless Chromium (Debian's ``chromium``; the browser test skips, saying so,
where none is installed): it loads without errors, every image decodes and the screenshot is not blank.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, run_tasks, write_replay_log

from uc_tasks.data.options import DEFAULT_SEED, sample_options
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.failures import ERROR, PROVIDER_BLOCK, failed_answer
from uc_tasks.report import ReportConfig, build_report
from uc_tasks.report import main as report_main
from uc_tasks.runs import load_summaries

HIT, MISS, NA = "No, it is not safe for viewing on social media.", "Yes, it is safe.", "It depends on the context."
REFUSAL = "I'm sorry, I can't help with that."
CONTEXT = {"hit": "No. It would not be appropriate there.", "miss": "Yes, that would be appropriate."}
_RUNS: dict[str, Path] = {}


def replay_answers(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Answers for each task of ``unsafeconcepts`` and ``unsafeconcepts_context``, in doc order. The image
    alignment score falls with the concept's position, text stays high, so the per-concept modality gap
    varies; two image requests get no answer (an error, a provider block)."""
    tax = load_taxonomy()
    concepts = [r["unsafe_concept"] for r in rows]
    index = {c: i for i, c in enumerate(tax.concepts)}
    options = sample_options(concepts, DEFAULT_SEED)
    perception = []
    for i, (concept, opt) in enumerate(zip(concepts, options, strict=True)):
        wrong = next(letter for letter in "ABCD" if letter != opt["correct_option"])
        perception.append("I am not sure." if i % 11 == 5 else f"The image shows {concept}." if i % 4 else wrong)
    image = []
    for i, concept in enumerate(concepts):
        k = index[concept]
        for p in range(5):
            n = i * 5 + p
            image.append(failed_answer(ERROR, "timed out") if n == 17 else
                         failed_answer(PROVIDER_BLOCK, "content filter") if n == 23 else
                         NA if n % 13 == 7 else REFUSAL if n % 29 == 3 else
                         HIT if (p + 0.5) / 5 < (k % 5) / 4 or k % 5 == 4 else MISS)
    text = [MISS if (k % 7 == 0 and p < 3) else NA if (k * 5 + p) % 31 == 4 else HIT
            for k in range(len(tax.concepts)) for p in range(5)]
    return {"unsafeconcepts_perception": perception, "unsafeconcepts_image": image, "unsafeconcepts_text": text,
            "unsafeconcepts_context_safe": [CONTEXT["miss"] if i % 3 else CONTEXT["hit"] for i in range(len(rows))],
            "unsafeconcepts_context_unsafe": [CONTEXT["hit"] if i % 4 else CONTEXT["miss"] for i in range(len(rows))],
            "unsafeconcepts_context_safe_text": [CONTEXT["miss"] if k % 2 else CONTEXT["hit"] for k in range(75)],
            "unsafeconcepts_context_unsafe_text": [CONTEXT["hit"] if k % 5 else CONTEXT["miss"] for k in range(75)]}


def cli_run(tmp_path_factory: pytest.TempPathFactory, replica: Path) -> Path:
    """The output folder of the one real lmms-eval run of replayed answers (``unsafeconcepts`` and
    ``unsafeconcepts_context`` on ``replica``), made once per session for this module and the leaderboard's."""
    key = str(replica)
    if key not in _RUNS:
        tmp = tmp_path_factory.mktemp("cli_run")
        rows = [json.loads(line) for line in (replica / "metadata.jsonl").read_text().splitlines()]
        for task, answers in replay_answers(rows).items():
            write_replay_log(tmp / "logs", task, answers)
        run_tasks("unsafeconcepts,unsafeconcepts_context", "from_log", f"logs={tmp / 'logs'}", tmp / "out",
                  clean_env(UNSAFECONCEPTS_DATA=str(replica)))
        _RUNS[key] = tmp / "out"
    return _RUNS[key]


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory, small_replica: Path) -> Path:
    return cli_run(tmp_path_factory, small_replica)


@pytest.fixture(scope="module")
def after(before: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 'after alignment' run: the CLI run's samples with every image answer judged safe turned into an
    unsafe one, re-read by ``python -m uc_tasks.rescore`` (a rescored file, the report's other input)."""
    from uc_tasks.rescore import main as rescore_main

    tmp = tmp_path_factory.mktemp("after")
    files = []
    for f in sorted(before.rglob("*_samples_unsafeconcepts_*.jsonl")):
        if f.name.split("_samples_")[1] not in ("unsafeconcepts_perception.jsonl", "unsafeconcepts_image.jsonl",
                                                "unsafeconcepts_text.jsonl"):
            continue
        lines = [json.loads(line) for line in f.read_text().splitlines()]
        for s in lines:
            if s["filtered_resps"] == MISS:
                s["filtered_resps"] = s["breakdown"]["answer"] = HIT
        (tmp / f.name).write_text("".join(json.dumps(s) + "\n" for s in lines))
        files.append(str(tmp / f.name))
    assert rescore_main([*files, "--out", str(tmp / "rescored_rule.json")]) == 0
    return tmp / "rescored_rule.json"


# --- fast tier: a rescored file made in-process ------------------------------------------------


def rescored_file(tmp: Path) -> Path:
    """``rescore`` of unscored records (one image per concept): a real results summary in seconds."""
    from uc_tasks.rescore import main as rescore_main

    tax = load_taxonomy()
    options = sample_options(list(tax.concepts), DEFAULT_SEED)
    files = []
    for task in ("perception", "image", "text"):
        rows = []
        for k, (concept, opt) in enumerate(zip(tax.concepts, options, strict=True)):
            base = {"task": task, "category": tax.concept_category[concept], "concept": concept}
            if task == "perception":
                rows.append({**base, "row_id": k, "option_str": opt["option_str"], "target": opt["correct_option"],
                             "answer": f"The image shows {concept}." if k % 3 else "I am not sure."})
                continue
            for p in range(1, 6):
                answer = HIT if (task == "text" or (k + p) % 4 == 0) else MISS if (k + p) % 4 != 1 else NA
                rows.append({**base, "prompt_id": p, "answer": answer} | ({"row_id": k} if task == "image" else {}))
        path = tmp / f"unscored_unsafeconcepts_{task}_x.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(str(path))
    out = tmp / "rescored_rule.json"
    assert rescore_main([*files, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def rescored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rescored_file(tmp_path_factory.mktemp("rescored"))


def _embedded(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/(?:png|jpeg);base64,([^"]+)"', page)]


def test_report_of_a_rescored_file(rescored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main([str(rescored), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    summary = load_summaries(rescored)
    image_ci = summary["tasks"]["image"]["ci"]["accuracy"]
    shown = f"{image_ci['estimate']:.3f} [{image_ci['ci_low']:.3f}, {image_ci['ci_high']:.3f}]"
    assert shown in page, "the headline CI is the one the file holds"
    for anchor in ("headline", "categories", "gap", "quadrants", "context", "prompts", "answers", "examples",
                   "provenance"):
        assert f"id='{anchor}'" in page, anchor
    assert "No run holds the context tasks" in page
    assert "records no data source" in page, "a rescored file names no images: the page says so instead"
    pngs = sorted((tmp_path / "r").glob("*.png"))
    assert {p.name for p in pngs} >= {"per_category.png", "modality_gap_1.png", "perception_x_alignment_1.png",
                                      "prompt_sensitivity.png", "na_rate.png", "answers.png"}
    embedded = _embedded(page)
    assert sorted(embedded) == sorted(p.read_bytes() for p in pngs), "every plot is embedded, byte for byte"
    assert all(b.startswith(b"\x89PNG") and len(b) > 5000 for b in embedded)
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page), "nothing is fetched from elsewhere"
    assert "<td>scorer</td><td>name=rule, version=" in page
    assert "wrote " in capsys.readouterr().out


def test_report_config_file(rescored: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "report.yaml"
    cfg.write_text(f"runs: [{rescored}]\nout: {tmp_path / 'y'}\ntitle: From YAML\nexamples: 0\ndpi: 60\n")
    assert report_main(["--config", str(cfg)]) == 0
    page = (tmp_path / "y" / "report.html").read_text()
    assert "<title>From YAML</title>" in page and "Content warning" not in page


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent/run", "--out", "X"], "no such file or folder"),
    (["NOTJSON", "--out", "X"], "not valid JSON"),
    (["LIST", "--out", "X"], "without 'results'"),
    (["RUN"], "--out is required"),
    (["RUN", "--out", "X", "--labels", "a", "b"], "--labels has 2 name(s) for 1 run(s)"),
    (["RUN", "--out", "X", "--examples", "-1"], "--examples -1"),
    (["RUN", "--out", "X", "--dpi", "5"], "--dpi 5"),
], ids=["missing", "not-json", "not-results", "no-out", "labels", "examples", "dpi"])
def test_bad_input_stops_with_one_line(argv: list[str], message: str, rescored: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    names = {"NOTJSON": str(tmp_path / "bad.json"), "LIST": str(tmp_path / "list.json"), "RUN": str(rescored),
             "X": str(tmp_path / "out")}
    assert report_main([names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("unsafeconcepts report: ") and message in err, err


# --- slow tier: runs through the real CLI, the page in a browser -------------------------------


def _detail(jpeg: bytes) -> float:
    """Fine detail of an image: mean difference from a slightly smoothed copy (about 0 once blurred)."""
    from PIL import Image, ImageChops, ImageFilter, ImageStat

    im = Image.open(io.BytesIO(jpeg)).convert("L")
    return ImageStat.Stat(ImageChops.difference(im, im.filter(ImageFilter.GaussianBlur(2)))).mean[0]


@pytest.mark.slow
def test_report_compares_two_runs(before: Path, after: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    page_path = build_report(ReportConfig(runs=[str(before), str(after)], out=str(tmp_path / "r"),
                                          labels=["base", "aligned"], examples=4))
    seconds = time.perf_counter() - t0
    page = page_path.read_text()
    a, b = load_summaries(before), load_summaries(after)
    assert "change (2nd - 1st)" in page and "<th>base</th><th>aligned</th>" in page
    from uc_tasks.report.numbers import change

    d = change(a["tasks"]["image"], b["tasks"]["image"])
    assert d["estimate"] > 0.3, "the 'aligned' replay calls far more images unsafe"
    assert f"{d['estimate']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" in page
    gap = a["group"]["modality_gap"]["ci"]
    assert f"{gap['estimate']:+.3f} [{gap['ci_low']:+.3f}, {gap['ci_high']:+.3f}]" in page
    flagged = a["group"]["modality_gap_test"]["unsafe_text_safe_image"]
    assert flagged and flagged[0] in page, "the concepts unsafe as text but safe as an image are listed"
    for provenance in (a["provenance"]["prompts"]["sha256"], a["provenance"]["git"]["commit"], "folder: ",
                       "split</td><td>all", "lmms_eval 0.7.3", "seed 2024"):
        assert provenance in page, provenance
    assert "context_sensitivity.png" in {p.name for p in (tmp_path / "r").glob("*.png")}
    assert "no answer: error" in page or "1 error" in page, "requests without an answer are counted"
    # example images: blurred copies only, unless --unblur
    blurred = [x for x in _embedded(page) if x.startswith(b"\xff\xd8")]
    assert len(blurred) == 4 and "<details open>" in page and "Content warning" in page
    sharp_page = build_report(ReportConfig(runs=[str(before)], out=str(tmp_path / "u"), examples=4,
                                           unblur=True)).read_text()
    sharp = [x for x in _embedded(sharp_page) if x.startswith(b"\xff\xd8")]
    assert len(sharp) == 4 and "UNBLURRED" in sharp_page and "<details>" in sharp_page
    assert all(_detail(b) < _detail(s) / 5 for b, s in zip(blurred, sharp, strict=True)), \
        "the default page holds blurred copies only"
    assert seconds < 120


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium binary: install Debian's chromium package (scripts/setup.sh does, as root) "
                "to open the report in a headless browser")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(before: Path, after: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    browser = _chromium()
    page_path = build_report(ReportConfig(runs=[str(before), str(after)], out=str(tmp_path / "r")))
    n_images = page_path.read_text().count("<img ")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0"]
    url = page_path.resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=10000", "--dump-dom", url], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.search(r'<html[^>]*data-errors="0"', dom.stdout), "the page raised or failed to load something"
    assert f'data-images-decoded="{n_images}/{n_images}"' in dom.stdout, "an image did not decode"
    assert n_images >= 11
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr.replace("CONSOLE(0)", ""), dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, *flags, "--window-size=1280,2400", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    im = Image.open(shot).convert("L")
    assert im.size == (1280, 2400)
    stat = ImageStat.Stat(im)
    dark = sum(im.histogram()[:200]) / (im.size[0] * im.size[1])
    assert stat.stddev[0] > 20 and dark > 0.03, f"blank screenshot? stddev {stat.stddev[0]:.1f}, dark {dark:.3f}"
