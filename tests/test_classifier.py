"""The RoBERTa classifier scorer on tiny trained classifiers of the authors' architecture.

The tiny classifiers (tests/tiny_roberta.py) are trained until they give each of their training
answers its human label, so every expected label here is known before the scorer runs.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tiny_roberta as tr
import torch
from conftest import Run, clean_env, run_tasks, write_replay_log

from uc_tasks.scoring import Scorer
from uc_tasks.scoring.base import NA
from uc_tasks.scoring.classifier import ClassifierScorer

LETTERS = "ABCD"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    return tr.build_all(tmp_path_factory.mktemp("tiny_roberta"))


def make(tiny: dict[str, Path], **kw: Any) -> ClassifierScorer:
    args: dict[str, Any] = {"alignment": str(tiny["alignment"]), "perception": str(tiny["perception"]),
                            "tokenizer": str(tiny["tokenizer"]), "device": "cpu"}
    return ClassifierScorer(**{**args, **kw})


def one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("classifier scorer: "), msg
    return msg


# --- reading answers --------------------------------------------------------------------------


def test_alignment_labels_in_input_order(tiny: dict[str, Path]) -> None:
    texts, labels = tr.alignment_examples()
    assert {"safe", "unsafe", "na"} == set(labels)
    order = list(reversed(range(len(texts)))) + [0, 5, 0]  # shuffled, with repeats
    scorer = make(tiny)
    assert isinstance(scorer, Scorer)
    readings = scorer.read_alignment([texts[i] for i in order])
    assert [r.label for r in readings] == [labels[i] for i in order]
    assert readings[0].reason.startswith("alignment classifier: ") and "(p=0." in readings[0].reason


def test_perception_labels_map_to_letters_and_na(tiny: dict[str, Path]) -> None:
    texts, labels = tr.perception_examples()
    assert set(labels) == {*LETTERS, NA}
    options = [{"A": "w", "B": "x", "C": "y", "D": "z"}] * len(texts)
    readings = make(tiny).read_perception(texts, options)
    assert [r.label for r in readings] == labels
    assert next(r for r, lab in zip(readings, labels, strict=True) if lab == NA).reason.startswith(
        "perception classifier: N/A")
    with pytest.raises(ValueError, match="2 answers but 1 option sets"):
        make(tiny).read_perception(texts[:2], options[:1])


def test_batch_sizes_give_the_same_readings(tiny: dict[str, Path]) -> None:
    texts, labels = tr.alignment_examples()
    texts = texts + ["No.", "", "Yes, it is safe."]
    runs = {bs: make(tiny, batch_size=bs).probabilities("alignment", texts) for bs in (1, 3, 64)}
    for bs in (3, 64):
        for a, b in zip(runs[1], runs[bs], strict=True):
            assert a == pytest.approx(b, abs=1e-5), bs
    assert [max(p, key=p.get) for p in runs[64][: len(labels)]] == labels


def test_probabilities_match_the_authors_module(tiny: dict[str, Path]) -> None:
    """The scorer's batched, padded, sorted inference equals the authors' module run one text at a time."""
    from transformers import AutoTokenizer, RobertaConfig

    texts, _ = tr.perception_examples()
    texts = texts + [" ".join(texts) * 3]  # longer than the tiny model's 128 tokens: truncated
    tok = AutoTokenizer.from_pretrained(str(tiny["tokenizer"]))
    config = RobertaConfig.from_json_file(str(tiny["perception"] / "config.json"))
    ref = tr.RobertaClassifier(config, 5)
    state = torch.load(tiny["perception"] / "epoch_10.pt", weights_only=True)
    assert "roberta.embeddings.position_ids" in state  # a tolerated buffer is present in the file
    ref.load_state_dict({k: v for k, v in state.items() if k != "roberta.embeddings.position_ids"})
    ref.eval()
    got = make(tiny, batch_size=4).probabilities("perception", texts)
    with torch.no_grad():
        for text, p in zip(texts, got, strict=True):
            enc = tok(text, truncation=True, max_length=128, return_tensors="pt")
            want = ref(enc["input_ids"], enc["attention_mask"]).softmax(-1)[0].tolist()
            assert list(p.values()) == pytest.approx(want, abs=1e-5)
    assert len(tok(texts[-1])["input_ids"]) > 128


def test_same_answer_is_classified_once(tiny: dict[str, Path]) -> None:
    texts, _ = tr.alignment_examples()
    scorer = make(tiny)
    first = scorer.read_alignment(texts[:4] + texts[:4] + [texts[0]])
    assert scorer.n_inferred == {"alignment": 4, "perception": 0}
    again = scorer.read_alignment([texts[3], texts[0], texts[4]])
    assert scorer.n_inferred["alignment"] == 5
    assert again[:2] == [first[3], first[0]]


def test_memo_is_bounded(tiny: dict[str, Path], monkeypatch) -> None:
    from uc_tasks.scoring import classifier

    monkeypatch.setattr(classifier, "MEMO_SIZE", 3)
    texts, labels = tr.alignment_examples()
    scorer = make(tiny)
    assert [r.label for r in scorer.read_alignment(texts[:5])] == labels[:5]
    assert [text for _, text in scorer._memo] == texts[2:5]  # the oldest were dropped
    assert scorer.read_alignment(texts[:1])[0].label == labels[0] and scorer.n_inferred["alignment"] == 6


def test_settings_record_sources_and_loaded_weights(tiny: dict[str, Path]) -> None:
    scorer = make(tiny, batch_size=7, revision="abc123")
    s = scorer.settings()
    assert s["weights_sha256"] == {"alignment": None, "perception": None}
    scorer.read_perception(["A"], [{}])  # loads only the perception classifier
    want = hashlib.sha256((tiny["perception"] / "epoch_10.pt").read_bytes()).hexdigest()[:16]
    assert scorer.settings() == {
        "name": "classifier", "version": "1", "alignment": str(tiny["alignment"]),
        "perception": str(tiny["perception"]), "revision": "abc123",
        "weights_sha256": {"alignment": None, "perception": want}, "tokenizer": str(tiny["tokenizer"]),
        "device": "cpu", "batch_size": 7, "max_length": 512,
    }
    json.dumps(scorer.settings())


def test_from_env(tiny: dict[str, Path]) -> None:
    defaults = ClassifierScorer.from_env({"UNSAFECONCEPTS_CLASSIFIER_DEVICE": "cpu"}).settings()
    assert (defaults["alignment"], defaults["perception"], defaults["tokenizer"], defaults["batch_size"]) == (
        "yiting/alignment_classifier", "yiting/perception_classifier", "roberta-base", 64)
    env = {"UNSAFECONCEPTS_CLASSIFIER_ALIGNMENT": str(tiny["alignment"] / "epoch_10.pt"),
           "UNSAFECONCEPTS_CLASSIFIER_PERCEPTION": str(tiny["perception"]),
           "UNSAFECONCEPTS_CLASSIFIER_TOKENIZER": str(tiny["tokenizer"]),
           "UNSAFECONCEPTS_CLASSIFIER_REVISION": "v1", "UNSAFECONCEPTS_CLASSIFIER_BATCH_SIZE": "5"}
    scorer = ClassifierScorer.from_env(env)
    s = scorer.settings()
    assert (s["alignment"], s["revision"], s["batch_size"]) == (env["UNSAFECONCEPTS_CLASSIFIER_ALIGNMENT"], "v1", 5)
    assert s["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    texts, labels = tr.alignment_examples()
    assert [r.label for r in scorer.read_alignment(texts)] == labels  # a weights file path works too


# --- bad settings and bad weights: one line each ---------------------------------------------


BAD_ENV = [
    pytest.param({"UNSAFECONCEPTS_CLASSIFIER_BATCH_SIZE": "0"}, "batch size must be a positive integer", id="batch-0"),
    pytest.param({"UNSAFECONCEPTS_CLASSIFIER_BATCH_SIZE": "lots"}, "BATCH_SIZE must be a positive integer",
                 id="batch-text"),
    pytest.param({"UNSAFECONCEPTS_CLASSIFIER_DEVICE": "gpu"}, "unknown device 'gpu'", id="device-name"),
    pytest.param({"UNSAFECONCEPTS_CLASSIFIER_ALIGNMENT": "/nowhere/alignment"},
                 "is neither an existing file or folder nor a hub repo id", id="missing-path"),
    pytest.param({"UNSAFECONCEPTS_CLASSIFIER_PERCEPTION": "not a repo"},
                 "is neither an existing file or folder nor a hub repo id", id="bad-hub-id"),
    pytest.param({"UNSAFECONCEPTS_CLASSIFIER_TOKENIZER": "./no_such_tokenizer"}, "does not exist", id="tokenizer"),
]
if not torch.cuda.is_available():
    BAD_ENV.append(pytest.param({"UNSAFECONCEPTS_CLASSIFIER_DEVICE": "cuda"}, "torch sees no CUDA GPU", id="no-cuda"))


@pytest.mark.parametrize(("env", "message"), BAD_ENV)
def test_bad_settings_fail_at_construction(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as e:
        ClassifierScorer.from_env(env)
    assert message in one_line(e)


def test_folder_without_weights(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as e:
        ClassifierScorer(alignment=str(tmp_path), device="cpu")
    assert "holds no epoch_10.pt" in one_line(e)


def _variant(tiny: dict[str, Path], folder: Path, change: Any, config: dict[str, Any] | None) -> Path:
    """The tiny alignment weights changed by ``change``, with its config.json updated by ``config``
    (None: no config.json, so roberta-base's config applies)."""
    folder.mkdir()
    state = torch.load(tiny["alignment"] / "epoch_10.pt", weights_only=True)
    torch.save(change(state), folder / "epoch_10.pt")
    if config is not None:
        cfg = json.loads((tiny["alignment"] / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**cfg, **config}))
    return folder


def _drop(key: str) -> Any:
    return lambda s: {k: v for k, v in s.items() if k != key}


STRICT = [
    pytest.param(_drop("roberta.encoder.layer.1.output.dense.bias"), {},
                 "missing keys: roberta.encoder.layer.1.output.dense.bias;", id="missing-key"),
    pytest.param(lambda s: {**s, "roberta.extra_head.weight": torch.zeros(2)}, {},
                 "unexpected keys: roberta.extra_head.weight;", id="unexpected-key"),
    pytest.param(lambda s: {f"module.{k}": v for k, v in s.items()}, {},
                 "missing keys: classifier.bias, classifier.weight, roberta.embeddings.LayerNorm.bias", id="prefixed"),
    pytest.param(lambda s: {**s, "classifier.weight": torch.zeros(5, 32), "classifier.bias": torch.zeros(5)}, {},
                 "has 5 output labels but the alignment classifier has 3 (Safe, Unsafe, NA)", id="label-count"),
    pytest.param(lambda s: s, None, "missing keys: roberta.encoder.layer.10.attention.output.LayerNorm.bias",
                 id="no-config-so-roberta-base"),
    pytest.param(lambda s: s, {"hidden_size": 48}, "roberta.embeddings.word_embeddings.weight (1000, 32) vs (1000, 48)",
                 id="wrong-config"),
    pytest.param(lambda s: [1, 2, 3], {}, "is not a state dict of tensors (got list)", id="not-a-state-dict"),
]


@pytest.mark.parametrize(("change", "config", "message"), STRICT)
def test_strict_loading(tiny: dict[str, Path], tmp_path: Path, change: Any, config: dict[str, Any] | None,
                        message: str) -> None:
    folder = _variant(tiny, tmp_path / "weights", change, config)
    scorer = make(tiny, alignment=str(folder))
    with pytest.raises(RuntimeError) as e:
        scorer.read_alignment(["It is not safe."])
    assert message in one_line(e)
    assert scorer.settings()["weights_sha256"]["alignment"] is None


def test_corrupt_weights_file(tiny: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "epoch_10.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError) as e:
        make(tiny, alignment=str(tmp_path)).read_alignment(["No."])
    assert "could not read" in one_line(e) and "as a PyTorch state dict" in str(e.value)


def test_hub_offline_fails_with_one_line_and_only_when_needed(tiny: dict[str, Path], monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    scorer = make(tiny, alignment="yiting/alignment_classifier")
    assert scorer.read_perception(["A"], [{}])[0].label == "A"  # a perception-only run needs no alignment weights
    with pytest.raises(RuntimeError) as e:
        scorer.read_alignment(["No."])
    msg = one_line(e)
    assert "'yiting/alignment_classifier'" in msg and "UNSAFECONCEPTS_CLASSIFIER_ALIGNMENT=DIR" in msg
    assert "download it" in msg
    assert scorer.settings()["weights_sha256"]["alignment"] is None


def test_tokenizer_not_available_offline(tiny: dict[str, Path], monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError) as e:
        make(tiny, tokenizer="roberta-base").read_alignment(["No."])
    assert "could not load tokenizer 'roberta-base'" in one_line(e)
    assert "UNSAFECONCEPTS_CLASSIFIER_TOKENIZER=DIR" in str(e.value)


class _GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as the hub answers for a gated repo the user has not accepted."""

    def _gated(self) -> None:
        self.send_response(403)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model yiting/alignment_classifier is restricted.")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _gated

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gated_hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
def test_gated_hub_repo_says_to_accept_the_terms(gated_hub: str, tmp_path: Path) -> None:
    code = ("from uc_tasks.scoring.classifier import ClassifierScorer\n"
            "ClassifierScorer(device='cpu').read_alignment(['No.'])\n")
    env = {**clean_env(), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": gated_hub,
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_ETAG_TIMEOUT": "5"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("RuntimeError: classifier scorer: "), proc.stderr[-2000:]
    assert "accept its terms on huggingface.co and log in" in last and "yiting/alignment_classifier" in last


# --- end to end through the real lmms-eval command ---------------------------------------------


def _option_file(path: Path, rows: list[dict[str, Any]]) -> list[str]:
    """An option file in the authors' format whose correct letters cycle A, B, C, D."""
    from uc_tasks.data.taxonomy import load_taxonomy

    tax = load_taxonomy()
    letters = []
    with open(path, "w") as f:
        for i, r in enumerate(rows):
            others = [c for c in tax.concepts if tax.concept_category[c] != r["category"]][:3]
            pos = i % 4
            opts = others[:pos] + [r["unsafe_concept"]] + others[pos:]
            option_str = " \n".join(f"{L}: {c}" for L, c in zip(LETTERS, opts, strict=True))
            f.write(json.dumps({**r, "option_str": option_str, "correct_option": LETTERS[pos]}) + "\n")
            letters.append(LETTERS[pos])
    return letters


@dataclass
class CliRun:
    """One real lmms-eval run with the classifier scorer, and what each sample must read."""

    run: Run
    labels: dict[str, list[str]]  # task -> expected label per doc
    hits: dict[str, list[bool]]
    weights: dict[str, Path]  # task -> classifier folder


CLI_TASKS = {"unsafeconcepts_text": "alignment", "unsafeconcepts_perception": "perception"}


@pytest.fixture(scope="module")
def cli_run(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, small_replica: Path,
            replica_rows: list[dict[str, Any]]) -> CliRun:
    """UNSAFECONCEPTS_SCORER=classifier through the real CLI on replayed answers of known labels."""
    tmp = tmp_path_factory.mktemp("cli_classifier")
    a_texts, a_labels = tr.alignment_examples()
    p_texts, p_labels = tr.perception_examples()
    logs = tmp / "logs"
    n_text = 5 * len({r["unsafe_concept"] for r in replica_rows})
    text_pick = [(7 * i + 1) % len(a_texts) for i in range(n_text)]
    write_replay_log(logs, "unsafeconcepts_text", [a_texts[i] for i in text_pick])
    percep_pick = [(3 * i) % len(p_texts) for i in range(len(replica_rows))]
    write_replay_log(logs, "unsafeconcepts_perception", [p_texts[i] for i in percep_pick])
    letters = _option_file(tmp / "perception_metadata.jsonl", replica_rows)

    env = clean_env(UNSAFECONCEPTS_DATA=str(small_replica), OMP_NUM_THREADS="1",
                    UNSAFECONCEPTS_PERCEPTION_OPTIONS=str(tmp / "perception_metadata.jsonl"),
                    UNSAFECONCEPTS_SCORER="classifier",
                    UNSAFECONCEPTS_CLASSIFIER_ALIGNMENT=str(tiny["alignment"]),
                    UNSAFECONCEPTS_CLASSIFIER_PERCEPTION=str(tiny["perception"]),
                    UNSAFECONCEPTS_CLASSIFIER_TOKENIZER=str(tiny["tokenizer"]),
                    UNSAFECONCEPTS_CLASSIFIER_DEVICE="cpu", UNSAFECONCEPTS_CLASSIFIER_BATCH_SIZE="8")
    run = run_tasks(",".join(CLI_TASKS), "from_log", f"logs={logs}", tmp / "out", env)
    text_labels = [a_labels[i] for i in text_pick]
    percep_labels = [p_labels[i] for i in percep_pick]
    return CliRun(
        run,
        {"unsafeconcepts_text": text_labels, "unsafeconcepts_perception": percep_labels},
        {"unsafeconcepts_text": [lab == "unsafe" for lab in text_labels],
         "unsafeconcepts_perception": [lab == want for lab, want in zip(percep_labels, letters, strict=True)]},
        {"unsafeconcepts_text": tiny["alignment"], "unsafeconcepts_perception": tiny["perception"]},
    )


@pytest.mark.slow
@pytest.mark.parametrize("task", list(CLI_TASKS))
def test_cli_with_classifier_scorer(cli_run: CliRun, task: str) -> None:
    """Every sample gets its classifier's label; the metrics count those labels; the scorer is recorded."""
    run, want = cli_run.run, cli_run.labels[task]
    samples = sorted(run.samples[task], key=lambda s: s["doc_id"])
    assert [s["breakdown"]["label"] for s in samples] == want
    assert all(s["breakdown"]["reason"].startswith(f"{CLI_TASKS[task]} classifier: ") for s in samples)
    n, n_na, hits = len(want), want.count(NA), sum(cli_run.hits[task])
    assert 0 < n_na < n and 0 < hits < n - n_na
    assert run.metric(task, "na_rate") == pytest.approx(n_na / n)
    assert run.metric(task, "accuracy") == pytest.approx(hits / (n - n_na))
    scorer = run.metric(task, "breakdown")["scorer"]
    assert (scorer["name"], scorer["device"], scorer["batch_size"]) == ("classifier", "cpu", 8)
    assert scorer[CLI_TASKS[task]] == str(cli_run.weights[task])


@pytest.mark.slow
@pytest.mark.parametrize("task", list(CLI_TASKS))
def test_cli_records_the_weights_loaded(cli_run: CliRun, task: str) -> None:
    weights = cli_run.weights[task] / "epoch_10.pt"
    scorer = cli_run.run.metric(task, "breakdown")["scorer"]
    assert scorer["weights_sha256"][CLI_TASKS[task]] == hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
