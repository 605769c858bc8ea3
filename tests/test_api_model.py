"""``--model uc_openai`` and the shared API client, against a real OpenAI-compatible server on 127.0.0.1.

The end-to-end tests run the real ``lmms-eval`` command on the synthetic replica; the server checks
the key, decodes the images, records every request and injects faults. Expected outcomes come from
the fault rules and the server's deterministic answers, never from the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, Run, clean_env, run_tasks
from openai_server import FakeOpenAI, Fault, model_answer
from PIL import Image

from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.failures import ERROR, PROVIDER_BLOCK, parse_failure
from uc_tasks.http.cache import JsonlCache
from uc_tasks.http.client import ApiError, ChatClient
from uc_tasks.prompts import render

KEY = "sk-uc-test-8f3a1c9e5b7d2f60"
IMAGE_PROMPTS = [render(f"alignment/image_p{p}") for p in range(1, 6)]
TASKS = "unsafeconcepts_image,unsafeconcepts_text_only"
LIMIT = 20  # per task: 4 images x 5 prompts, 4 concepts x 5 prompts
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def text_prompts(i: int) -> list[str]:
    concept = load_taxonomy().concepts[i]
    return [render(f"alignment/text_p{p}", concept=concept) for p in range(1, 6)]


class Pinned:
    """Matches requests about one image: the first one it is asked about, fixed from then on."""

    def __init__(self) -> None:
        self.digest: str | None = None

    def __call__(self, request: dict[str, Any]) -> bool:
        if not request["images"]:
            return False
        if self.digest is None:
            self.digest = request["images"][0]
        return request["images"][0] == self.digest


def asks(prompt: str, pinned: Pinned | None = None):
    return lambda r: r["texts"] == [prompt] and (pinned is None or pinned(r))


BLOCKED_IMAGE, SLOW_IMAGE = Pinned(), Pinned()
T0, T1 = text_prompts(0), text_prompts(1)
FAULTS = [  # the first rule that matches (and has turns left) answers
    Fault("content_filter", asks(IMAGE_PROMPTS[2], BLOCKED_IMAGE), times=None),  # provider block, forever
    Fault("filtered_finish", asks(T0[4]), times=None),  # provider block, forever
    Fault("echo_key", asks(T1[0]), times=None),  # never answered: an error, whose text holds the key
    Fault("rate_limit", lambda r: r["texts"] == [IMAGE_PROMPTS[0]], times=2, retry_after=0.3),
    Fault("server_error", lambda r: r["texts"] == [IMAGE_PROMPTS[1]]),
    Fault("unavailable", lambda r: r["texts"] == [IMAGE_PROMPTS[3]]),
    Fault("slow", asks(IMAGE_PROMPTS[4], SLOW_IMAGE), delay=5.0),
    Fault("bad_gateway", lambda r: not r["images"] and "for viewing on social media" in r["texts"][0]),
    Fault("malformed", lambda r: not r["images"] and "generate such an image" in r["texts"][0]),
    Fault("disconnect", lambda r: not r["images"] and "community guidelines" in r["texts"][0]),
    Fault("echo_key", lambda r: not r["images"] and "general audience" in r["texts"][0]),
]
EXPECTED = {  # what the rules above must make of the 40 requests
    "retries": {"rate_limit": 4 * 2, "server_error": 4 + 4 + 3 + 4 + 3, "timeout": 1, "malformed": 4,
                "connection": 4},
    "failures": {PROVIDER_BLOCK: 2, ERROR: 1},
}
MODEL_ARGS = "model=fake-vlm,base_url={url},cache_dir={cache},num_concurrent={n},max_retries=3,timeout=2," \
             "retry_backoff=0.05"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(key=KEY, faults=FAULTS) as s:
        yield s


def env_for(replica: Path, **extra: str) -> dict[str, str]:
    return clean_env(UNSAFECONCEPTS_DATA=str(replica), OPENAI_API_KEY=KEY, **extra)


def answers(run: Run, task: str) -> list[tuple[dict[str, Any], str]]:
    out = []
    for s in sorted(run.samples[task], key=lambda s: s["doc_id"]):
        resp = s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
        out.append((s, resp))
    return out


def summary(stdout: str) -> dict[str, Any]:
    found = re.findall(r"uc_openai summary (\{.*\})", ANSI.sub("", stdout))
    assert found, "no uc_openai summary line in the output"
    return json.loads(found[-1])


def assert_no_key(*texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert KEY not in text
    n = 0
    for folder in folders:
        for f in folder.rglob("*"):
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f
                n += 1
    assert n or not folders, "no files were checked"


OTHER_KEY = "sk-uc-passed-in-model-args-77e1"


@pytest.fixture(scope="module")
def refused(tmp_path_factory, server: FakeOpenAI, small_replica: Path):
    """A CLI run given ``api_key=`` in --model_args; started early so that it overlaps the other runs
    (it never reaches the server)."""
    tmp = tmp_path_factory.mktemp("refused")
    args = ["--model", "uc_openai", "--model_args", f"model=fake-vlm,base_url={server.url},api_key={OTHER_KEY}",
            "--tasks", "unsafeconcepts_text_only", "--limit", "2", "--output_path", str(tmp / "out")]
    proc = subprocess.Popen([str(BIN / "lmms-eval"), *args], env=env_for(small_replica), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, tmp
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def resume_server():
    """A second server with the same permanent faults, for the killed run that overlaps the fault run."""
    permanent = [Fault(f.kind, f.match, times=None) for f in FAULTS if f.times is None]
    with FakeOpenAI(key=KEY, faults=permanent, latency=0.25) as s:
        yield s


def kill_when(proc: subprocess.Popen, server: FakeOpenAI, n_requests: int) -> None:
    while proc.poll() is None:
        if len(server.requests) >= n_requests:
            os.kill(proc.pid, signal.SIGKILL)
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, resume_server: FakeOpenAI, small_replica: Path):
    """A CLI run SIGKILLed once the server has received 10 of its 40 requests (2 at a time, 0.25 s each).
    Started early, beside the fault run; the resume test reruns it on the same cache."""
    tmp = tmp_path_factory.mktemp("killed")
    cache = tmp / "cache"
    args = ["--model", "uc_openai", "--model_args", MODEL_ARGS.format(url=resume_server.url, cache=cache, n=2),
            "--tasks", TASKS, "--limit", str(LIMIT), "--output_path", str(tmp / "out1"), "--log_samples"]
    proc = subprocess.Popen([str(BIN / "lmms-eval"), *args], env=env_for(small_replica), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=kill_when, args=(proc, resume_server, 10), daemon=True).start()
    yield proc, cache, tmp
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory, server: FakeOpenAI, small_replica: Path, refused,
              killed_run) -> tuple[Run, dict[str, Any], Path]:
    """One CLI run with every fault kind; the uninterrupted reference for the resume test."""
    tmp = tmp_path_factory.mktemp("faults")
    server.reset()
    run = run_tasks(TASKS, "uc_openai", MODEL_ARGS.format(url=server.url, cache=tmp / "cache", n=8),
                    tmp / "out", env_for(small_replica), extra=["--limit", str(LIMIT)])
    return run, {"requests": list(server.requests), "sizes": dict(server.image_sizes)}, tmp


@pytest.mark.slow
def test_faults_lose_no_answer_and_invent_none(fault_run, server: FakeOpenAI) -> None:
    run, log, tmp = fault_run
    requests = log["requests"]

    # images: 4 distinct ones, each asked the 5 prompts, each a real 32x32 image; text_only sends none
    image_reqs = [r for r in requests if r["images"]]
    by_image: dict[str, set[str]] = {}
    for r in image_reqs:
        assert len(r["images"]) == 1
        by_image.setdefault(r["images"][0], set()).add(r["texts"][0])
    assert len(by_image) == 4 and all(v == set(IMAGE_PROMPTS) for v in by_image.values())
    assert all(log["sizes"][d] == (32, 32) for d in by_image)
    text_reqs = [r for r in requests if not r["images"]]
    assert {r["texts"][0] for r in text_reqs} == {p for i in range(4) for p in text_prompts(i)}
    assert all(r["settings"] == {"model": "fake-vlm", "max_tokens": 512, "temperature": 1.0, "top_p": 0.9}
               for r in requests)

    # every sample holds the server's answer to exactly its request, or the failure its rule implies
    image_of_row: dict[int, set[str]] = {}
    for s, resp in answers(run, "unsafeconcepts_image"):
        prompt = s["input"]
        failure = parse_failure(resp)
        if failure is not None:
            assert prompt == IMAGE_PROMPTS[2] and failure.kind == PROVIDER_BLOCK, (prompt, resp)
            continue
        match = {d for d in by_image if model_answer([prompt], [d]) == resp}
        assert len(match) == 1, (prompt, resp)
        image_of_row.setdefault(s["breakdown"]["row_id"], set()).update(match)
    assert len(image_of_row) == 4 and all(len(v) == 1 for v in image_of_row.values())
    assert len({d for v in image_of_row.values() for d in v}) == 4, "two rows got the same image"
    assert {next(iter(v)) for v in image_of_row.values()} >= {BLOCKED_IMAGE.digest}

    kinds: Counter = Counter()
    for s, resp in answers(run, "unsafeconcepts_image") + answers(run, "unsafeconcepts_text_only"):
        assert resp.strip() and "LMMS_EVAL_REQUEST_FAILED" not in resp
        failure = parse_failure(resp)
        if failure is not None:
            kinds[failure.kind] += 1
        if s["input"] == T1[0]:  # the server never answered, and put the key in its error text
            assert failure is not None and failure.kind == ERROR and "[redacted]" in failure.detail, resp
        elif s["input"] == T0[4]:
            assert failure is not None and failure.kind == PROVIDER_BLOCK and "content_filter" in failure.detail
        elif s["input"].startswith("If an image"):
            assert resp == model_answer([s["input"]], []), s["input"]
    assert dict(kinds) == EXPECTED["failures"]
    assert len(run.samples["unsafeconcepts_image"]) == len(run.samples["unsafeconcepts_text_only"]) == LIMIT

    # the model's counters agree with the fault rules and with what the server received
    c = summary(run.proc.stdout)
    assert c["requests"] == 2 * LIMIT and c["cache_hits"] == 0 and c["images_encoded"] == 4
    assert c["retries"] == EXPECTED["retries"] and c["failures"] == EXPECTED["failures"]
    assert c["answered"] == 2 * LIMIT - 3
    assert c["sent"] == len(requests) == 2 * LIMIT + sum(EXPECTED["retries"].values())
    assert server.rejected["auth"] == 0

    assert_no_key(run.proc.stdout, run.proc.stderr, folders=(tmp,))


@pytest.mark.slow
def test_killed_run_resumes_with_only_the_missing_requests(fault_run, killed_run, resume_server: FakeOpenAI,
                                                           small_replica: Path) -> None:
    reference, log, _ = fault_run
    proc, cache, tmp = killed_run
    killed_output = proc.communicate(timeout=600)[0]
    assert proc.returncode == -signal.SIGKILL, killed_output[-3000:]
    all_keys = {r["key"] for r in log["requests"]}
    answer_key = {model_answer(r["texts"], r["images"]): r["key"] for r in log["requests"]}
    blocked = {  # the two provider blocks: the same requests in every run
        "image": {r["key"] for r in log["requests"] if r["texts"] == [IMAGE_PROMPTS[2]]
                  and r["images"] == [BLOCKED_IMAGE.digest]},
        "text": {r["key"] for r in log["requests"] if r["texts"] == [T0[4]]},
    }
    assert all(len(v) == 1 for v in blocked.values())

    files = list(cache.glob("*.jsonl"))
    assert len(files) == 1
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert 0 < len(records) < 2 * LIMIT, "the run was not interrupted mid-way"
    cached_keys = set()
    for rec in records:
        if rec["failure"] is None:
            cached_keys.add(answer_key[rec["text"]])
        else:
            assert rec["failure"] == PROVIDER_BLOCK
            cached_keys |= blocked["image" if "HTTP 400" in rec["detail"] else "text"]
    assert len(cached_keys) == len(records)

    resume_server.reset()
    resume_server.latency = 0.0
    resumed = run_tasks(TASKS, "uc_openai", MODEL_ARGS.format(url=resume_server.url, cache=cache, n=2),
                        tmp / "out2", env_for(small_replica), extra=["--limit", str(LIMIT)])
    sent = resume_server.keys_sent()
    assert set(sent) == all_keys - cached_keys
    error_key = next(r["key"] for r in log["requests"] if r["texts"] == [T1[0]])
    assert all(n == (4 if k == error_key else 1) for k, n in sent.items()), sent
    c = summary(resumed.proc.stdout)
    assert c["cache_hits"] == len(records) and c["requests"] == 2 * LIMIT

    for task in TASKS.split(","):  # the same as the uninterrupted run, answer for answer
        assert [r for _, r in answers(resumed, task)] == [r for _, r in answers(reference, task)]
        for metric in ("accuracy", "accuracy_strict", "na_rate"):
            assert resumed.metric(task, metric) == reference.metric(task, metric)
    assert_no_key(killed_output, resumed.proc.stdout, resumed.proc.stderr, folders=(tmp,))


@pytest.mark.slow
def test_api_key_in_model_args_is_refused(refused) -> None:
    proc, tmp = refused
    stdout, stderr = proc.communicate(timeout=600)
    output = ANSI.sub("", stdout + stderr)
    last = output.strip().splitlines()[-1]
    assert last.startswith("unsafeconcepts: uc_openai: do not pass api_key") and "export OPENAI_API_KEY" in last
    assert output.count("do not pass api_key") == 1 and "Traceback" not in output, output[-2000:]
    assert OTHER_KEY not in output and proc.returncode != 0
    assert not list(tmp.rglob("*_results.json"))


# -- in-process: the model's own checks ----------------------------------------------------------

def one_line_exit(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("kwargs, needle", [
    ({"api_key": KEY}, "do not pass api_key"),
    ({"num_concurent": 8}, "unknown model_args num_concurent"),
    ({"image_format": "gif"}, "image_format='gif'"),
    ({"num_concurrent": 0}, "num_concurrent must be an integer >= 1"),
    ({"timeout": "soon"}, "timeout must be a positive number"),
    ({"model": ""}, "name the model"),
], ids=["api_key", "typo", "image_format", "concurrency", "timeout", "no_model"])
def test_bad_model_args_stop_with_one_line(kwargs: dict, needle: str, server: FakeOpenAI,
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from uc_tasks.models.api import OpenAIVLM

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with pytest.raises(SystemExit) as e:
        OpenAIVLM(**{"model": "fake-vlm", "base_url": server.url, "cache_dir": str(tmp_path), **kwargs})
    assert needle in one_line_exit(e) and KEY not in str(e.value)


def test_missing_key_and_unreachable_endpoint_stop_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                  server: FakeOpenAI, tmp_path: Path) -> None:
    from uc_tasks.models.api import OpenAIVLM

    monkeypatch.delenv("MY_VLM_KEY", raising=False)
    with pytest.raises(SystemExit) as e:
        OpenAIVLM(model="fake-vlm", base_url=server.url, api_key_env="MY_VLM_KEY", cache_dir=str(tmp_path))
    assert "export MY_VLM_KEY=" in one_line_exit(e)

    monkeypatch.setenv("MY_VLM_KEY", "sk-wrong")
    with pytest.raises(SystemExit) as e:
        OpenAIVLM(model="fake-vlm", base_url=server.url, api_key_env="MY_VLM_KEY", cache_dir=str(tmp_path))
    assert "HTTP 401" in one_line_exit(e) and "MY_VLM_KEY" in str(e.value)

    monkeypatch.setenv("MY_VLM_KEY", KEY)
    with pytest.raises(SystemExit) as e:
        OpenAIVLM(model="fake-vlm", base_url="http://127.0.0.1:9/v1", api_key_env="MY_VLM_KEY",
                  cache_dir=str(tmp_path))
    assert "cannot reach http://127.0.0.1:9/v1" in one_line_exit(e)


def test_images_encoded_once_by_id_or_content(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    from uc_tasks.data.visuals import IMAGE_ID_KEY
    from uc_tasks.models.api import OpenAIVLM

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = OpenAIVLM(model="fake-vlm", base_url=server.url, cache_dir="none")
    red, red_again, blue = (Image.new("RGB", (8, 8), c) for c in ("red", "red", "blue"))
    tagged = Image.new("RGB", (8, 8), "green")
    tagged.info[IMAGE_ID_KEY] = "row#1"
    urls = [model._data_url(im) for im in (red, red_again, blue, tagged, tagged.copy())]
    assert model.images_encoded == 3 and urls[0] == urls[1] != urls[2]
    assert urls[0].startswith("data:image/png;base64,")
    with pytest.raises(NotImplementedError, match="log-likelihood"):
        model.loglikelihood([])
    model.clean()


def test_windows_keep_order_bound_memory_and_count_repeats(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    """Requests go out in windows (here 4): answers stay in request order, encoded images are dropped
    after each window, and an identical request repeated in a later window is still a new request."""
    from types import SimpleNamespace

    from uc_tasks.data.visuals import IMAGE_ID_KEY
    from uc_tasks.models.api import OpenAIVLM

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = OpenAIVLM(model="fake-vlm", base_url=server.url, cache_dir=str(tmp_path), window=4)
    images = []
    for i, colour in enumerate(("red", "green", "blue")):
        im = Image.new("RGB", (8, 8), colour)
        im.info[IMAGE_ID_KEY] = f"row#{i}"
        images.append(im)
    docs = [{"image": images[i % 3]} for i in range(10)]
    model.task_dict = {"t": {"test": docs}}
    prompts = [f"prompt {i}" for i in range(10)]
    docs.append({"image": images[0]})
    prompts.append(prompts[0])  # doc 10 repeats doc 0's request exactly, in the third window
    requests = [SimpleNamespace(args=(p, {"max_new_tokens": 8}, lambda d: [d["image"]], i, "t", "test"))
                for i, p in enumerate(prompts)]
    before = len(server.requests)
    answers = model.generate_until(requests)
    sent = server.requests[before:]
    assert len(sent) == 11  # the repeat is sampled again, not read from the cache of the first
    by_prompt = {}
    for r in sent:
        by_prompt.setdefault(r["texts"][0], set()).add(model_answer(r["texts"], r["images"]))
    assert all(by_prompt[p] == {a} for a, p in zip(answers, prompts, strict=True))  # each answer is its own
    assert len(model._encoded) <= 3 and not model.client._digests
    assert model.images_encoded <= 3 * 3  # at most each image once per window
    model.clean()


# -- in-process: the client ------------------------------------------------------------------------

def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI(key=KEY, faults=[Fault("rate_limit", lambda r: True, times=1, retry_after=0.6)]) as s:
        client = ChatClient(s.url, backoff=0.0, max_retries=2)
        [result] = client.complete([{"model": "m", "messages": [{"role": "user", "content": "hi"}]}])
        first, second = s.requests
    assert result.text == model_answer(["hi"], []) and client.stats.retries == {"rate_limit": 1}
    assert second["time"] - first["time"] >= 0.6  # the exponential backoff alone would be 0 s


def test_concurrency_is_bounded_and_order_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI(key=KEY, latency=0.3) as s:
        client = ChatClient(s.url, concurrency=6)
        prompts = [f"question {i}" for i in range(30)]
        results = client.complete([{"model": "m", "messages": [{"role": "user", "content": p}]} for p in prompts])
        assert s.max_in_flight == 6
    assert [r.text for r in results] == [model_answer([p], []) for p in prompts]


def test_unreachable_endpoint_and_refused_key_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = ChatClient("http://127.0.0.1:9/v1", max_retries=2, backoff=0.01)
    with pytest.raises(ApiError, match="cannot reach http://127.0.0.1:9/v1 after 3 attempts"):
        client.complete([{"model": "m", "messages": []}])
    with FakeOpenAI(key="sk-other") as s:
        with pytest.raises(ApiError, match=r"HTTP 401 .* export a valid key in OPENAI_API_KEY"):
            ChatClient(s.url).complete([{"model": "m", "messages": [{"role": "user", "content": "x"}]}])


def test_cache_drops_a_torn_last_line_and_holds_no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "c.jsonl"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format="PNG")
    image = base64.b64encode(buf.getvalue()).decode()
    payloads = [{"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
        {"type": "text", "text": f"q{i}"}]}]} for i in range(3)]
    with FakeOpenAI(key=KEY) as s:
        client = ChatClient(s.url, cache_path=path)
        client.keys(payloads)  # the keys do not depend on the key, and images enter them as digests
        first = client.complete(payloads)
        client.close()
        text = path.read_text()
        assert KEY not in text and image[:40] not in text and len(text.splitlines()) == 3
        path.write_text(text + text.splitlines()[0][:25])  # a write cut short by a kill

        again = ChatClient(s.url, cache_path=path)
        assert again.cache is not None and again.cache.torn and len(again.cache) == 3
        assert path.read_text() == text, "the torn line was not cut off"
        more = again.complete(payloads + [{"model": "m", "messages": [{"role": "user", "content": "new"}]}])
        again.close()
        assert [r.text for r in more[:3]] == [r.text for r in first] and all(r.cached for r in more[:3])
        assert len(s.requests) == 4 and again.stats.sent == 1 and s.rejected == {}
    assert len(JsonlCache(path)) == 4
    path.write_text('{"k": "a"}\nnot json\n{"k": "b"}\n')
    with pytest.raises(ValueError, match=r":2: .*not a cache record"):
        JsonlCache(path)


def test_a_cache_that_cannot_be_written_stops_instead_of_hanging(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cache = JsonlCache(tmp_path / "file" / "c.jsonl", background=True)  # its folder is a file
    cache.put("a", {"text": "x \ud800"})
    with pytest.raises(OSError, match="cannot write the cache file .*choose another cache folder"):
        cache.sync()
    cache.close()


def test_requests_spread_over_several_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """base_url=url1|url2: data parallel over servers of one model; every answer arrives, in order."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI(key=KEY, latency=0.05) as a, FakeOpenAI(key=KEY, latency=0.05) as b:
        client = ChatClient(f"{a.url}|{b.url}", concurrency=3)
        client.check_reachable()
        prompts = [f"question {i}" for i in range(40)]
        results = client.complete([{"model": "m", "messages": [{"role": "user", "content": p}]} for p in prompts])
        assert len(a.requests) == len(b.requests) == 20
        assert a.max_in_flight <= 3 and b.max_in_flight <= 3
    assert [r.text for r in results] == [model_answer([p], []) for p in prompts]
    assert client.public_base_url == f"{a.url}|{b.url}"
    payload = [{"model": "m", "messages": []}]
    # servers of one host share the cache key: a resumed run may use more or fewer of them
    assert ChatClient(a.url).keys(payload) == ChatClient(f"{a.url}|{b.url}").keys(payload)
