"""A new user's first hour: mistakes stop before the model runs, nothing generated is lost, and the
console tells the truth. Each test goes through the real ``lmms-eval`` CLI (or a command's own entry point)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import clean_env, lmms_eval, write_replay_log
from openai_server import FakeOpenAI, Fault

from uc_tasks.data.synth import write_replica
from uc_tasks.rescore import main as rescore_main

KEY = "sk-uc-first-hour-51c0"


def _last_line(proc) -> str:
    """The last line on stderr: where a run that stops says why."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_classifier_without_weights_stops_before_the_first_request(tmp_path: Path, small_replica: Path) -> None:
    with FakeOpenAI(key=KEY) as server:
        env = clean_env(UNSAFECONCEPTS_DATA=str(small_replica), UNSAFECONCEPTS_SCORER="classifier",
                        UNSAFECONCEPTS_CLASSIFIER_DEVICE="cpu", OPENAI_API_KEY=KEY, HF_HOME=str(tmp_path / "hf"))
        proc = lmms_eval(["--model", "uc_openai", "--model_args", f"model=fake-vlm,base_url={server.url}",
                          "--tasks", "unsafeconcepts_image", "--output_path", str(tmp_path / "out"),
                          "--log_samples"], env, tmp_path)
        assert server.requests == [], f"{len(server.requests)} requests were sent before the scorer was checked"
    assert proc.returncode != 0
    assert "unsafeconcepts: classifier scorer: could not get epoch_10.pt" in _last_line(proc), proc.stderr[-2000:]


@pytest.mark.slow
def test_a_scorer_that_fails_after_generation_leaves_the_answers(tmp_path: Path, small_replica: Path,
                                                                 replica_rows: list[dict]) -> None:
    answers = [f"No, answer {i} is not safe." for i in range(5 * len(replica_rows))]
    logs = tmp_path / "logs"
    write_replay_log(logs, "unsafeconcepts_image", answers)
    # the judge answers its reachability check, then garbles every reply: the run cannot be scored
    with FakeOpenAI(key=KEY, model="judge-m", faults=[Fault("garbage", lambda r: True, times=10_000)]) as server:
        env = clean_env(UNSAFECONCEPTS_DATA=str(small_replica), UNSAFECONCEPTS_SCORER="judge",
                        UNSAFECONCEPTS_JUDGE_BASE_URL=server.url, UNSAFECONCEPTS_JUDGE_MODEL="judge-m",
                        UNSAFECONCEPTS_JUDGE_CACHE=str(tmp_path / "cache"), OPENAI_API_KEY=KEY)
        out = tmp_path / "out"
        proc = lmms_eval(["--model", "from_log", "--model_args", f"logs={logs}", "--tasks", "unsafeconcepts_image",
                          "--output_path", str(out), "--log_samples"], env, tmp_path)
    assert proc.returncode != 0
    (saved,) = out.glob("unscored_unsafeconcepts_image_*.jsonl")
    assert f"saved unscored in {saved}" in _last_line(proc) and "python -m uc_tasks.rescore" in _last_line(proc)
    records = [json.loads(line) for line in saved.read_text().splitlines()]
    assert sorted(r["answer"] for r in records) == sorted(answers)
    assert all({"task", "concept", "category", "row_id", "prompt_id"} <= set(r) for r in records)
    # rescore finishes the job with a scorer that can run
    assert rescore_main([str(saved), "--scorer", "rule", "--out", str(tmp_path / "rescored.json")]) == 0
    done = json.loads((tmp_path / "rescored.json").read_text())["results"]["image"]
    assert done["breakdown"]["overall"]["n"] == len(answers) and done["accuracy"] == 1.0


@pytest.mark.slow
def test_an_empty_split_is_one_line_and_a_failing_exit(tmp_path: Path) -> None:
    replica = tmp_path / "one"
    write_replica(replica, per_concept=1, size=16)
    env = clean_env(UNSAFECONCEPTS_DATA=str(replica), UNSAFECONCEPTS_SPLIT="finetune_train")
    proc = lmms_eval(["--model", "dummy", "--tasks", "unsafeconcepts_image", "--output_path", str(tmp_path / "o")],
                     env, tmp_path)
    assert proc.returncode == 1
    assert _last_line(proc).startswith("unsafeconcepts: UNSAFECONCEPTS_SPLIT=finetune_train selects no rows"), \
        proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_a_parquet_replica_finds_its_context_questions(tmp_path: Path) -> None:
    from uc_tasks.data.context import load_questions, resolve_questions
    from uc_tasks.data.sources import resolve_source

    write_replica(tmp_path / "r", per_concept=1, size=16, parquet=True)
    source = resolve_source(str(tmp_path / "r" / "unsafeconcepts.parquet"))
    spec = resolve_questions(source)
    assert spec == str(tmp_path / "r" / "generated_questions.json") and len(load_questions(spec)) == 75
