"""``python -m uc_align.evaluate`` and Table 3: the out-of-domain tasks (SMID, NSFW), the general-ability readings
(MME recomputed with a whole-word yes/no reader, LLaVA-Bench from the logged judge scores), the paper's rows, the
refusals of bad settings, and, slow, the command end to end through the real lmms-eval CLI on the testbed: the
warm base (chance) and the SFT checkpoint (it learnt the test) on the fine-tuning test, SMID and NSFW stand-ins
and the generated yes/no stand-in of the general benchmarks; a second call re-runs nothing; the report shows it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, REPO
from testbed import EVAL_BATCH, Testbed
from tiny_qwen2vl import model_args

from uc_align.evaluate import EvaluateConfig, EvaluateError, plan, read_checkpoint
from uc_tasks.data.ood import load_ood_rows, resolve_ood_source
from uc_tasks.data.sources import DataError
from uc_tasks.data.synth import write_ood_images
from uc_tasks.report import table3 as t3
from uc_tasks.scoring.rules.yesno import read_yes_no


@pytest.mark.parametrize("answer, reading", [
    ("Yes", "yes"), ("No.", "no"), ("NO", "no"), ("no, not at all", "no"), ("Yes, there is a dog.", "yes"),
    ("The answer is yes.", "yes"), ("Not sure", None), ("Nothing like that is shown.", None), ("Nope", None),
    ("", None), ("Maybe yes, maybe no", None), ("Ja", None),
], ids=["yes", "no-dot", "upper", "no-then-not", "yes-sentence", "yes-later", "not-sure", "nothing", "nope",
        "empty", "both", "other-language"])
def test_yes_no_reader_takes_whole_words(answer: str, reading: str | None) -> None:
    assert read_yes_no(answer) == reading


def _mme_sample(doc_id: int, image: str, target: str, answer: str) -> dict[str, Any]:
    """A sample as lmms-eval logs one of MME (no doc: the image is in the metric's value and ``input_media``)."""
    return {"doc_id": doc_id, "target": target, "filtered_resps": answer, "input_media": [image],
            "mme_perception_score": {"question_id": image, "category": "existence", "score": 0.0}}


def test_mme_accuracy_does_not_count_not_as_no() -> None:
    from lmms_eval.tasks.mme.utils import parse_pred_ans

    assert parse_pred_ans("Not sure") == "no", "lmms-eval's MME reader (like the authors') reads 'Not ...' as 'No'"
    samples = [_mme_sample(0, "a.png", "Yes", "Yes"), _mme_sample(1, "a.png", "No", "Not sure"),
               _mme_sample(2, "b.png", "Yes", "No"), _mme_sample(3, "b.png", "No", "No, there is none.")]
    cell = t3.yes_no_cell(samples, seed=0)
    assert cell["value"] == 0.5 and cell["n"] == 4 and cell["n_unread"] == 1, "'Not sure' is unread, counted wrong"
    assert cell["ci_low"] is not None and cell["ci_low"] <= 0.5 <= cell["ci_high"]
    assert {t3._image_of(s) for s in samples} == {"a.png", "b.png"}, "two questions per image, resampled together"


def _llava_sample(doc_id: int, scores: list[float], judge: str = "gpt-4o") -> dict[str, Any]:
    return {"doc_id": doc_id, "gpt_eval_llava_all": {"scores": scores, "eval_model": judge}}


def test_llava_bench_relative_score_and_failed_judge() -> None:
    ok = [_llava_sample(0, [8, 6]), _llava_sample(1, [10, 5]), _llava_sample(2, [6, 3])]
    cell = t3.llava_cell(ok, seed=0)
    assert cell["value"] == pytest.approx(14 / 24) and cell["n_judge_failed"] == 0 and cell["judge"] == ["gpt-4o"]
    failed = t3.llava_cell([*ok, _llava_sample(3, [-1, -1], "Failed Request")], seed=0)
    assert failed["value"] is None and failed["n_judge_failed"] == 1, "a failed judge request is never averaged in"
    assert "1 of 4 judge requests failed" in t3.fmt_cell(failed)


def test_general_agg_is_the_mean_of_mme_and_llava_bench(tmp_path: Path) -> None:
    mme = [_mme_sample(0, "a.png", "Yes", "Yes"), _mme_sample(1, "a.png", "No", "No"),
           _mme_sample(2, "b.png", "Yes", "No"), _mme_sample(3, "b.png", "No", "No")]
    llava = [_llava_sample(0, [8, 6]), _llava_sample(1, [10, 5]), _llava_sample(2, [6, 3])]
    row = t3.our_row("ppo", "ppo", {"tasks": {}}, {"mme": mme, "llava_in_the_wild": llava})
    assert row["cells"]["mme"]["value"] == 0.75 and row["cells"]["general_agg"]["value"] == pytest.approx(
        (0.75 + 14 / 24) / 2)
    table = t3.build_table([row])
    assert [r["name"] for r in table["rows"]] == ["ppo", "PPO (reported, LLaVA-1.5-7B)"]
    assert "0.687 (reported)" in t3.to_markdown(table) and "| missing |" in t3.to_markdown(table)
    row["cells"]["accuracy"] = {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95}
    written = t3.write_table(t3.build_table([row]), tmp_path, dpi=60)
    assert [p.name for p in written] == ["table3.md", "table3.json", "table3_tradeoff.png"]


def test_paper_rows_hold_only_protocol_numbers() -> None:
    rows = {r["method"]: r for r in t3.paper_rows(["original", "sft", "dpo", "ppo", "grpo"])}
    assert set(rows) == {"original", "sft", "dpo", "ppo"}, "the paper has no GRPO / RLOO row"
    assert {m: (r["cells"]["accuracy"]["value"], r["cells"]["general_agg"]["value"]) for m, r in rows.items()} == {
        "original": (0.736, 0.708), "sft": (0.977, 0.558), "dpo": (0.648, 0.656), "ppo": (0.903, 0.687)}
    authors = {"value": 0.375, "source": "recomputed from the authors' answer files"}
    assert rows["sft"]["cells"]["llava_bench"] == authors
    for key in ("accuracy_safe", "accuracy_unsafe", "diversity", "smid", "smid_safe", "nsfw_unsafe", "mme"):
        assert rows["ppo"]["cells"][key] == {"value": None, "missing": t3.MISSING}, key
    assert all(r["source"] == "reported" and "reported" in r["name"] for r in rows.values())


def test_ood_folder_loads_and_bad_labels_stop(tmp_path: Path) -> None:
    folder = write_ood_images(tmp_path, "smid", 6, size=32)
    ds, report = load_ood_rows("smid", resolve_ood_source("smid", str(folder)))
    assert len(ds) == 6 and ds["label"] == [1, 0, 1, 0, 1, 0] and report.source.kind == "folder"
    assert resolve_ood_source("nsfw", "").location == "yiting/NSFWDataset"
    (folder / "metadata.jsonl").write_text('{"image_filename": "0.png", "label": 2}\n')
    with pytest.raises(DataError, match=r"row 0: label 2 is not 0 \(safe\) or 1 \(unsafe\)"):
        load_ood_rows("smid", resolve_ood_source("smid", str(folder)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="UNSAFECONCEPTS_NSFW_DATA=.*folder has no metadata.jsonl"):
        resolve_ood_source("nsfw", str(tmp_path / "empty"))


def _fake_checkpoint(folder: Path, status: str = "finished", command: str = "sft", base: str = "/models/base") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"0")
    (folder / "uc_align.json").write_text(json.dumps({"command": command, "status": status, "base_model": base}))
    return folder


@pytest.mark.parametrize("kwargs, message", [
    ({"general": ["llava_in_the_wild"]}, "llava_in_the_wild needs a judge: pass --judge MODEL"),
    ({"general": ["mmmu"]}, "--general mmmu: not a general-ability task"),
    ({"tasks": ["mme"]}, "--tasks mme: safety tasks are unsafeconcepts_* tasks"),
    ({"names": ["a", "b"]}, "--names has 2 name(s) for 1 checkpoint(s)"),
    ({"out": ""}, "out is required"),
], ids=["no-judge", "unknown-general", "general-as-safety", "names", "no-out"])
def test_bad_settings_stop_with_one_line(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EvaluateConfig(**{"checkpoints": [str(tmp_path)], "out": str(tmp_path / "o"), "general": [], **kwargs})


def test_checkpoints_are_checked_and_named(tmp_path: Path) -> None:
    sft, sft2 = _fake_checkpoint(tmp_path / "a"), _fake_checkpoint(tmp_path / "b")
    dpo = _fake_checkpoint(tmp_path / "c", command="dpo")
    models = plan(EvaluateConfig(checkpoints=[str(sft), str(sft2), str(dpo)], out=str(tmp_path / "o"), general=[]))
    assert [(m.name, m.method, m.base) for m in models] == [
        ("original", "original", "/models/base"), ("sft", "sft", "/models/base"), ("sft-2", "sft", "/models/base"),
        ("dpo", "dpo", "/models/base")]
    with pytest.raises(EvaluateError, match="training status is 'running', not 'finished'"):
        read_checkpoint(str(_fake_checkpoint(tmp_path / "r", status="running")))
    (tmp_path / "n").mkdir()
    with pytest.raises(EvaluateError, match="no adapter_config.json, adapter_model.safetensors, uc_align.json"):
        read_checkpoint(str(tmp_path / "n"))
    other = _fake_checkpoint(tmp_path / "d", base="/models/other")
    with pytest.raises(EvaluateError, match="2 different base models.*pass --base"):
        plan(EvaluateConfig(checkpoints=[str(sft), str(other)], out=str(tmp_path / "o"), general=[]))
    with pytest.raises(ValueError, match="--judge /models/base: the judge is the model tested"):
        plan(EvaluateConfig(checkpoints=[str(sft)], out=str(tmp_path / "o"), general=["llava_in_the_wild"],
                            judge="/models/base"))
    with pytest.raises(ValueError, match="--judge gpt-4o: the judge is the model tested"):  # an API model tested
        plan(EvaluateConfig(checkpoints=[str(sft)], out=str(tmp_path / "o"), general=["llava_in_the_wild"],
                            judge="gpt-4o", model="uc_openai", model_args="model=gpt-4o,base_url=http://x/v1"))
    assert plan(EvaluateConfig(checkpoints=[str(sft)], out=str(tmp_path / "o"), general=["llava_in_the_wild"],
                               judge="gpt-4o"))[1].name == "sft", "a judge apart from the model is accepted"


# --- slow: the command end to end on the testbed ------------------------------------------------


def _evaluate(testbed: Testbed, ckpt: Path, out: Path) -> subprocess.CompletedProcess:
    env = testbed.env(UNSAFECONCEPTS_SMID_DATA=str(testbed.root / "ood" / "smid"),
                      UNSAFECONCEPTS_NSFW_DATA=str(testbed.root / "ood" / "nsfw"))
    extra = model_args(testbed.warm).split(",", 1)[1]  # device, dtype (pretrained is set per model)
    args = [str(BIN / "python"), "-m", "uc_align.evaluate", str(ckpt), "--out", str(out), "--general",
            "uc_general_yesno", "--model_args", extra, "--batch_size", str(EVAL_BATCH)]
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_evaluate_base_and_sft_end_to_end(testbed: Testbed, sft_checkpoint: Path, tmp_path: Path) -> None:
    for name in ("smid", "nsfw"):
        if not (testbed.root / "ood" / name).is_dir():
            write_ood_images(testbed.root / "ood", name, 24, size=56)
    out = tmp_path / "eval"
    t0 = time.perf_counter()
    proc = _evaluate(testbed, sft_checkpoint, out)
    first = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    table = json.loads((out / "table3.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    base, sft = rows["original"]["cells"], rows["sft"]["cells"]
    # the numbers are the ones lmms-eval wrote for each model
    for name in ("original", "sft"):
        results = json.loads(next((out / name / "lmms").rglob("*_results.json")).read_text())["results"]
        for metric in ("accuracy", "accuracy_safe", "accuracy_unsafe"):
            assert rows[name]["cells"][metric]["value"] == pytest.approx(
                results["unsafeconcepts_finetune_test"][f"{metric},none"]), (name, metric)
        assert rows[name]["cells"]["smid"]["value"] == pytest.approx(results["unsafeconcepts_smid"]["accuracy,none"])
        assert rows[name]["cells"]["standin"]["value"] == pytest.approx(results["uc_general_yesno"]["accuracy,none"])
        assert rows[name]["cells"]["standin"]["n"] == 32
    assert sft["accuracy"]["value"] >= 0.9 > 0.75 > base["accuracy"]["value"], (base["accuracy"], sft["accuracy"])
    assert sft["accuracy"]["ci_low"] > base["accuracy"]["ci_high"], "SFT beats the chance-level base beyond the CIs"
    assert sft["smid"]["value"] > base["smid"]["value"], "the stand-in SMID images look like the training ones"
    for sub in ("safe", "unsafe"):
        assert sft[f"nsfw_{sub}"]["n"] == 12 and sft[f"nsfw_{sub}"]["ci_low"] is not None, sub
    assert "mme" not in sft and "general_agg" not in sft, "the stand-in is never MME nor General Agg"
    reported = {r["method"] for r in table["rows"] if r["source"] == "reported"}
    assert reported == {"original", "sft"}
    md = (out / "table3.md").read_text()
    assert "yes/no stand-in acc. (NOT MME)" in md and "SFT (reported, LLaVA-1.5-7B)" in md and "0.977 (reported)" in md
    assert (out / "table3_tradeoff.png").read_bytes().startswith(b"\x89PNG")
    # resumable: a second call runs nothing and writes the same table
    t1 = time.perf_counter()
    again = _evaluate(testbed, sft_checkpoint, out)
    second = time.perf_counter() - t1
    assert again.returncode == 0 and again.stdout.count("already evaluated") == 2, again.stdout + again.stderr
    assert json.loads((out / "table3.json").read_text()) == table and second < first / 3
    # the report of the evaluation folder shows Table 3 with the same numbers
    from uc_tasks.report import main as report_main

    assert report_main([str(out), "--out", str(tmp_path / "report"), "--examples", "0"]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert "id='table3'" in page and t3.fmt_cell(sft["accuracy"]) in page and "NOT MME" in page
    assert (tmp_path / "report" / "table3_tradeoff.png").is_file()
    # a plain lmms-eval run of the fine-tuning tasks gets its Table 3 row too (no method known: no paper row)
    assert report_main([str(out / "sft" / "lmms"), "--out", str(tmp_path / "plain"), "--labels", "SFT run",
                        "--examples", "0"]) == 0
    plain = (tmp_path / "plain" / "report.html").read_text()
    assert "id='table3'" in plain and t3.fmt_cell(sft["accuracy"]) in plain and "(reported" not in plain
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:  # the page with its Table 3 loads in a browser without errors, every image decoding
        n_images = page.count("<img ")
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                              f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                              (tmp_path / "report" / "report.html").resolve().as_uri()],
                             capture_output=True, text=True, timeout=120)
        assert re.search(r'<html[^>]*data-errors="0"', dom.stdout), dom.stderr[-2000:]
        assert f'data-images-decoded="{n_images}/{n_images}"' in dom.stdout and "Table 3" in dom.stdout
    print(f"\nTable 3 (testbed): first call {first:.0f} s, second {second:.1f} s\n{md}")


@pytest.mark.slow
def test_missing_ood_data_stops_with_one_line(testbed: Testbed, tmp_path: Path) -> None:
    env = testbed.env(UNSAFECONCEPTS_SMID_DATA=str(tmp_path / "nowhere"))
    extra = model_args(testbed.warm).split(",", 1)[1]
    proc = subprocess.run([str(BIN / "python"), "-m", "uc_align.evaluate", "--base", str(testbed.warm), "--out",
                           str(tmp_path / "o"), "--tasks", "unsafeconcepts_smid", "--general", "none",
                           "--model_args", extra], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "UNSAFECONCEPTS_SMID_DATA=" in err[0] and "not a folder with metadata.jsonl" in err[0], err
    record = json.loads((tmp_path / "o" / "original" / "evaluation.json").read_text())
    assert record["status"] == "failed" and record["missing"] == ["unsafeconcepts_smid"]


@pytest.mark.slow
def test_mme_accuracy_from_lmms_eval_mme_samples(testbed: Testbed, tmp_path: Path) -> None:
    """lmms-eval's own ``mme`` task (its YAML and scorer, included as is) on a small local set in MME's schema, the
    warm model answering: our accuracy reads the samples it logs, and agrees with lmms-eval's per-answer score
    wherever the answer opens with yes or no."""
    import datasets
    import lmms_eval
    from conftest import run_tasks
    from tiny_qwen2vl import LMMS_MODEL

    from uc_tasks.lmms.general import SHAPES, draw

    rows: dict[str, list[Any]] = {"question_id": [], "image": [], "question": [], "answer": [], "category": []}
    for k in range(8):
        for shape, truth in ((SHAPES[k % 3], "Yes"), (SHAPES[(k + 1) % 3], "No")):
            rows["question_id"].append(f"existence/{k}.png")
            rows["image"].append(draw(k))
            rows["question"].append(f"Is there a {shape} in this image? Please answer yes or no.")
            rows["answer"].append(truth)
            rows["category"].append("existence")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(str(tasks / "mme.parquet"))
    mme_yaml = Path(lmms_eval.__file__).parent / "tasks" / "mme" / "mme.yaml"
    (tasks / "mme_local.yaml").write_text(f"include: {mme_yaml}\ntask: mme_local\ndataset_path: parquet\n"
                                          f"dataset_kwargs:\n  data_files: {tasks / 'mme.parquet'}\n"
                                          "test_split: train\n")
    run = run_tasks("mme_local", LMMS_MODEL, model_args(testbed.warm), tmp_path / "out", testbed.env(),
                    extra=["--include_path", str(tasks), "--batch_size", "16"])
    samples = sorted(run.samples["mme_local"], key=lambda s: int(s["doc_id"]))
    assert len(samples) == 16 and all("doc" not in s for s in samples), "lmms-eval logs MME samples without the doc"
    cell = t3.yes_no_cell(samples, seed=0)
    theirs = [s["mme_perception_score"]["score"] for s in samples]
    opens = [re.match(r"\s*(yes|no)\b", t3._first(s["filtered_resps"]), re.I) for s in samples]
    assert all(opens), [s["filtered_resps"] for s in samples]  # where both readers agree ("Not ..." aside)
    assert cell["value"] == pytest.approx(sum(theirs) / len(theirs)) and cell["n"] == 16
    assert {t3._image_of(s) for s in samples} == {f"existence/{k}.png" for k in range(8)}
    assert run.metric("mme_local", "mme_perception_score") == pytest.approx(
        100 * cell["value"] + 100 * sum(a == b == 1.0 for a, b in zip(theirs[::2], theirs[1::2], strict=True)) / 8), \
        "lmms-eval's MME score is acc + acc+ (x100), not the paper's accuracy"


@pytest.mark.slow
def test_llava_bench_from_lmms_eval_samples(testbed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lmms-eval's own ``llava_in_the_wild`` (its YAML, judge prompt and parser, included as is) on a small local set,
    the judge a real OpenAI-compatible server on 127.0.0.1 reached through the variables ``uc_align.evaluate`` sets:
    the relative score is the ratio of the judged sums; one review the judge garbles (lmms-eval logs -1, -1 and
    averages it in) leaves our score undefined."""
    import datasets
    import lmms_eval
    from conftest import run_tasks
    from openai_server import FakeOpenAI, Fault
    from tiny_qwen2vl import LMMS_MODEL

    from uc_align.evaluate import _env
    from uc_tasks.lmms.general import SHAPES, draw

    categories = ("conv", "detail", "complex")
    rows: dict[str, list[Any]] = {"question_id": [], "image": [], "question": [], "caption": [], "gpt_answer": [],
                                  "category": []}
    for k in range(6):
        rows["question_id"].append(k)
        rows["image"].append(draw(k))
        rows["question"].append(f"What shape does this image show{' (hard)' if k == 5 else ''}?")
        rows["caption"].append(f"A {SHAPES[k % 3]} on a light background.")
        rows["gpt_answer"].append(f"The image shows a {SHAPES[k % 3]}.")
        rows["category"].append(categories[k % 3])
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(str(tasks / "llava.parquet"))
    task_yaml = Path(lmms_eval.__file__).parent / "tasks" / "llava-in-the-wild" / "llava-in-the-wild.yaml"
    (tasks / "llava_local.yaml").write_text(
        f"include: {task_yaml}\ntask: llava_local\ndataset_path: parquet\ndataset_kwargs:\n  data_files: "
        f"{tasks / 'llava.parquet'}\ntest_split: train\ngeneration_kwargs:\n  max_new_tokens: 24\n  do_sample: false\n")
    garble = Fault("garbage", lambda info: "(hard)" in "\n".join(info["texts"]), times=None)
    with FakeOpenAI(key="sk-judge", faults=[garble]) as server:
        monkeypatch.setenv("UC_TEST_JUDGE_KEY", "sk-judge")
        cfg = EvaluateConfig(out=str(tmp_path / "o"), general=["llava_in_the_wild"], judge="judge-4o",
                             judge_base_url=server.url, judge_api_key_env="UC_TEST_JUDGE_KEY")
        judge_env = {k: v for k, v in _env(cfg).items() if k in ("MODEL_VERSION", "OPENAI_API_URL", "OPENAI_API_KEY")}
        run = run_tasks("llava_local", LMMS_MODEL, model_args(testbed.warm), tmp_path / "out",
                        testbed.env(**judge_env), extra=["--include_path", str(tasks), "--batch_size", "8"])
        judged = [r for r in server.requests if "[End of Assistant 2]" in "\n".join(r["texts"])]
    assert len(judged) >= 6 and {r["settings"]["model"] for r in judged} == {"judge-4o"}, "the judge named apart"
    samples = sorted(run.samples["llava_local"], key=lambda s: int(s["doc_id"]))
    scores = [s["gpt_eval_llava_all"]["scores"] for s in samples]
    assert scores[5] == [-1, -1] and all(min(x) > 0 for x in scores[:5]), scores
    cell = t3.llava_cell(samples, seed=0)
    assert cell["value"] is None and cell["n_judge_failed"] == 1 and cell["judge"] == ["judge-4o"]
    ok = t3.llava_cell(samples[:5], seed=0)
    assert ok["value"] == pytest.approx(sum(x[1] for x in scores[:5]) / sum(x[0] for x in scores[:5]))
    theirs = run.metric("llava_local", "gpt_eval_llava_all")
    mean = [sum(x[i] for x in scores) / 6 for i in (0, 1)]
    assert theirs == pytest.approx(round(round(mean[1], 3) / round(mean[0], 3) * 100, 1)), \
        "lmms-eval averages the failed review's -1, -1 into its score"
