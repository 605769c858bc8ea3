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


@pytest.fixture(scope="module")
def group_run(tmp_path_factory: pytest.TempPathFactory, small_replica: Path):
    out = tmp_path_factory.mktemp("group_run")
    env = clean_env(UNSAFECONCEPTS_DATA=str(small_replica))
    proc = lmms_eval(["--model", "dummy", "--model_args", "response=No. It is not safe.", "--tasks", "unsafeconcepts",
                      "--output_path", str(out / "results"), "--log_samples"], env, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (out / "results").rglob("*_results.json")
    return proc, json.loads(results.read_text()), results


def _table_rows(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines() if line.startswith("|")]


@pytest.mark.slow
def test_group_metrics_only_on_group_rows_without_a_direction(group_run) -> None:
    proc, _, _ = group_run
    rows = _table_rows(proc.stdout)
    gap_rows = [r for r in rows if "modality_gap" in r]
    assert gap_rows and all(r[0] == "unsafeconcepts" for r in gap_rows), gap_rows  # never under a subtask
    assert all(r[4] == "" for r in gap_rows), "a gap has no better direction: no arrow"


@pytest.mark.slow
def test_stderr_column_shows_the_clustered_bootstrap_standard_error(group_run) -> None:
    proc, results, _ = group_run
    task = results["results"]["unsafeconcepts_image"]
    se = task["accuracy_strict_stderr,none"]
    ci = task["breakdown,none"]["ci"]["accuracy_strict"]
    assert isinstance(se, float) and se == pytest.approx(ci["standard_error"])
    rows = [r for r in _table_rows(proc.stdout) if r[0].endswith("unsafeconcepts_image") and r[3] == "accuracy_strict"]
    assert rows and rows[0][7] == f"{se:.4f}"


@pytest.mark.slow
def test_summary_after_the_table_names_counts_and_files(group_run) -> None:
    proc, results, path = group_run
    tail = proc.stdout[proc.stdout.rindex("UnsafeConcepts summary"):]
    n = results["results"]["unsafeconcepts_image"]["breakdown,none"]["overall"]["n"]
    assert f"unsafeconcepts_image: n={n} N/A=0 refusals=0 no answer=0 skipped rows=0" in tail
    assert "modality_gap (text - image) =" in tail and "95% CI" in tail
    assert f"results: {path}" in tail and "samples:" in tail and "(3 files)" in tail


@pytest.mark.slow
def test_lmms_eval_models_lists_our_backends(tmp_path: Path) -> None:
    proc = lmms_eval(["models"], clean_env(), tmp_path)
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"uc_hf_vlm", "uc_openai"} <= names, proc.stdout[-1500:]


def test_register_help_is_help(capsys: pytest.CaptureFixture[str]) -> None:
    from uc_tasks.lmms.register import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage:") and "--include_path" in out


def test_rescore_help_shows_the_positional_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        rescore_main(["--help"])
    out = capsys.readouterr().out
    assert "[INPUTS ...]" in out and "positional arguments" in out


def test_rescore_unknown_scorer_names_the_flag_not_a_variable(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.json").write_text("[]")
    assert rescore_main([str(tmp_path / "a.json"), "--scorer", "nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unsafeconcepts rescore: unknown scorer 'nonsense'") and "UNSAFECONCEPTS_" not in err


def test_rescore_invalid_json_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.json").write_text('[{"idx": 1, "prompt": ')
    assert rescore_main([str(tmp_path / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "--metadata" not in err


@pytest.mark.slow
def test_compare_matrix_has_column_labels(group_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, path = group_run
    assert rescore_main([str(path.parent), "--compare", "rule", "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "rule \\ rule" in line)
    assert header.split()[-3:] == ["safe", "unsafe", "na"]


def test_gated_data_message_names_the_current_login_command() -> None:
    from uc_tasks.data import sources

    assert "`hf auth login`" in sources._HF_HELP and "huggingface-cli" not in sources._HF_HELP
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "huggingface-cli" not in readme
