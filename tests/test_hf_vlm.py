"""``--model uc_hf_vlm`` on two tiny random VLM families (Qwen2-VL, LLaVA) built here from configs.

End-to-end tests go through the real ``lmms-eval`` command (and ``accelerate launch`` for data
parallelism) on the synthetic replica; the independent CLI runs are started two at a time in a
session fixture, each test waits for the ones it reads. In-process tests drive ``HFVLM`` directly
with real lmms-eval ``Instance`` objects. Greedy answers of a random model are deterministic
gibberish: equal settings must give equal strings, different weights different strings.
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, clean_env, run_tasks
from PIL import Image
from tiny_qwen2vl import build_tiny_qwen2vl, model_args, write_lora_adapter
from tiny_vlm import build_tiny_vlm

from uc_tasks.failures import ERROR, Failure, parse_failure
from uc_tasks.serve import free_port

pytestmark = pytest.mark.slow

TASKS = ("unsafeconcepts_image", "unsafeconcepts_text")
LIMIT = 8
GREEDY = "max_new_tokens=8,temperature=0"
LIMITED_TASK = "unsafeconcepts_text"  # its prompts differ in length with the concept and the question


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two model folders and their LoRA adapters (random, non-zero B)."""
    root = tmp_path_factory.mktemp("tiny_hf_vlm")
    qwen, llava = build_tiny_qwen2vl(root / "qwen2vl"), build_tiny_vlm(root / "llava")
    return {"qwen": qwen, "llava": llava, "qwen_adapter": write_lora_adapter(qwen, root / "qwen2vl-lora"),
            "llava_adapter": write_lora_adapter(llava, root / "llava-lora")}


def _read_run(proc: subprocess.CompletedProcess, out: Path) -> Run:
    """What ``conftest.run_tasks`` reads, for a command it does not start (``accelerate launch``)."""
    found = sorted(glob.glob(str(out / "**" / "*_results.json"), recursive=True))
    assert proc.returncode == 0 and found, f"run failed (rc={proc.returncode}, all ranks in {out}/launch.log):\n" \
                                           f"{proc.stderr[-5000:]}"
    samples = {f.rsplit("_samples_", 1)[1][: -len(".jsonl")]: [json.loads(x) for x in Path(f).read_text().splitlines()]
               for f in glob.glob(str(out / "**" / "*_samples_*.jsonl"), recursive=True)}
    return Run(proc, json.loads(Path(found[-1]).read_text()), samples)


class Runs:
    """CLI runs, two at a time; ``get(name)`` waits for one."""

    def __init__(self, root: Path, replica: Path, tiny: dict[str, Path]) -> None:
        self.root, self.tiny, self.pool = root, tiny, ThreadPoolExecutor(max_workers=2)
        self.env = clean_env(UNSAFECONCEPTS_DATA=str(replica), OMP_NUM_THREADS="1")
        self.futures: dict[str, Future] = {}

    def env_for(self, name: str) -> dict[str, str]:
        """Each run has its own datasets cache: concurrent runs (ours, or others' on this machine) must not
        write the same cache entries while an accelerate rank reads them."""
        return {**self.env, "HF_DATASETS_CACHE": str(self.root / f"{name}-datasets-cache")}

    def lmms(self, name: str, model: str, batch: int, **extra: object) -> None:
        self.futures[name] = self.pool.submit(self._lmms, name, model, batch, **extra)

    def _lmms(self, name: str, model: str, batch: int, **extra: object) -> Run:
        cli = ["--limit", str(LIMIT), "--batch_size", str(batch), "--gen_kwargs", GREEDY]
        return run_tasks(",".join(TASKS), "uc_hf_vlm", model_args(self.tiny[model], **extra), self.root / name,
                         self.env_for(name), cli)

    def after(self, name: str, first: str, make_args: Any, model: str, batch: int) -> None:
        """Run ``name`` once ``first`` is done, with model args that ``make_args(first's Run)`` returns."""
        chained: Future = Future()

        def start(done: Future) -> None:
            try:
                inner = self.pool.submit(self._lmms, name, model, batch, **make_args(done.result()))
                inner.add_done_callback(lambda f: chained.set_exception(f.exception()) if f.exception()
                                        else chained.set_result(f.result()))
            except BaseException as e:  # noqa: B036 - handed to the test that waits for it
                chained.set_exception(e)

        self.futures[first].add_done_callback(start)
        self.futures[name] = chained

    def accelerate(self, name: str, model: str, batch: int) -> None:
        """``accelerate launch`` with 2 CPU processes: ``--multi_gpu`` + ``ACCELERATE_USE_CPU=1`` (``--cpu`` starts
        one process), through ``python -m accelerate.commands.launch`` (the ``accelerate`` script imports timm,
        which needs torchvision)."""
        out = self.root / name
        out.mkdir(parents=True)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "lmms_eval", "--model", "uc_hf_vlm",
               "--model_args", model_args(self.tiny[model]).replace(",device=cpu", ""), "--tasks", ",".join(TASKS),
               "--limit", str(LIMIT), "--batch_size", str(batch), "--gen_kwargs", GREEDY,
               "--output_path", str(out), "--log_samples"]
        env = {**self.env_for(name), "ACCELERATE_USE_CPU": "1"}

        def launch() -> Run:
            proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True, timeout=600)
            (out / "launch.log").write_text(proc.stdout + proc.stderr)  # both ranks, for a failure's cause
            return _read_run(proc, out)

        self.futures[name] = self.pool.submit(launch)

    def bad(self, name: str, args: str) -> None:
        """A run whose model cannot be made: the process, not results."""
        cmd = [str(Path(sys.executable).parent / "lmms-eval"), "--model", "uc_hf_vlm", "--model_args", args,
               "--tasks", TASKS[1], "--limit", "1", "--output_path", str(self.root / name)]
        self.futures[name] = self.pool.submit(subprocess.run, cmd, env=self.env_for(name), cwd=self.root,
                                              capture_output=True, text=True, timeout=300)

    def get(self, name: str) -> Any:
        return self.futures[name].result()


def _prompt_lengths(model: Path, contexts: dict[int, str]) -> dict[int, int]:
    """Tokens of each text-task prompt as the backend builds it: chat template, one blank image."""
    from transformers import AutoConfig

    from uc_tasks.data.visuals import blank_image
    from uc_tasks.models.hf_load import load_processor

    processor = load_processor(str(model), AutoConfig.from_pretrained(model), trust_remote_code=False)
    out = {}
    for doc_id, text in contexts.items():
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        out[doc_id] = processor(text=[prompt], images=[blank_image()], return_tensors="pt")["input_ids"].shape[1]
    return out


def _length_limit(tiny: dict[str, Path]) -> Any:
    """Model args for a run in which only the longest text-task prompt(s) of ``run`` exceed max_input_tokens."""

    def make(run: Run) -> dict[str, object]:
        lengths = _prompt_lengths(tiny["qwen"], {s["doc_id"]: s["input"] for s in run.samples[LIMITED_TASK]})
        longest = max(lengths.values())
        return {"max_input_tokens": max(n for n in lengths.values() if n < longest)}

    return make


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory, small_replica: Path, tiny: dict[str, Path]) -> Iterator[Runs]:
    r = Runs(tmp_path_factory.mktemp("hf_vlm_runs"), small_replica, tiny)
    r.lmms("qwen_b4", "qwen", 4)
    r.lmms("llava_b4", "llava", 4)
    r.accelerate("llava_dp2", "llava", 2)
    r.after("qwen_b1_limited", "qwen_b4", _length_limit(tiny), "qwen", 1)
    r.lmms("qwen_lora", "qwen", 4, adapter=tiny["qwen_adapter"])
    r.bad("bad_dtype", model_args(tiny["qwen"]).replace("float32", "float64"))
    yield r
    r.pool.shutdown(wait=True)


def answers(run: Run, task: str) -> dict[int, str]:
    return {s["doc_id"]: s["filtered_resps"] for s in run.samples[task]}


def log(run: Run) -> str:
    return run.proc.stdout + run.proc.stderr  # lmms-eval logs to stdout


@pytest.mark.parametrize("name", ["qwen_b4", "llava_b4"], ids=["qwen2vl", "llava"])
def test_answers_are_generated_and_scored(runs: Runs, name: str) -> None:
    run = runs.get(name)
    assert "suppressing " in log(run) and " token ids [" in log(run)
    for task in TASKS:
        samples = run.samples[task]
        got = [s["filtered_resps"] for s in samples]
        assert len(samples) == LIMIT and all(isinstance(a, str) and a.strip() for a in got), got
        assert not any(parse_failure(a) for a in got) and len(set(got)) > 1, got
        labels = [s["breakdown"]["label"] for s in samples]
        assert all(label in ("safe", "unsafe", "na") for label in labels)
        overall = run.metric(task, "breakdown")["overall"]
        assert (overall["n"], overall["n_failed"], overall["n_na"]) == (LIMIT, 0, labels.count("na"))
        assert run.metric(task, "accuracy_strict") == pytest.approx(labels.count("unsafe") / LIMIT)
        assert run.metric(task, "na_rate") == pytest.approx(labels.count("na") / LIMIT)


def test_qwen2vl_processor_loads_without_torchvision(runs: Runs) -> None:
    text = log(runs.get("qwen_b4"))
    assert "could not build its video processor" in text and "loading it without one" in text


def test_batch_of_four_equals_batch_of_one_and_failures_are_counted_markers(runs: Runs) -> None:
    """Greedy answers at batch size 4 and 1 are equal (left padding: the prompts differ in length).
    The batch-1 run also has ``max_input_tokens`` just below the longest text prompt: those requests get
    the failure marker (never an empty answer), which the task counts apart from the answers."""
    b4, b1 = runs.get("qwen_b4"), runs.get("qwen_b1_limited")
    assert len({len(s["input"]) for task in TASKS for s in b4.samples[task]}) > 3, "prompts of one length"
    limit = int(b1.results["config"]["model_args"].rsplit("max_input_tokens=", 1)[1])
    lengths = _prompt_lengths(runs.tiny["qwen"], {s["doc_id"]: s["input"] for s in b4.samples[LIMITED_TASK]})
    too_long = {d for d, n in lengths.items() if n > limit}
    assert 1 <= len(too_long) < LIMIT
    for task in TASKS:
        got, want = answers(b1, task), answers(b4, task)
        assert got.keys() == want.keys() and len(got) == LIMIT
        failed = too_long if task == LIMITED_TASK else set()
        for doc_id, answer in got.items():
            failure = parse_failure(answer)
            if doc_id in failed:
                assert failure is not None and failure.kind == ERROR, answer
                assert failure.detail == (f"InputTooLong: the prompt has {lengths[doc_id]} tokens, more than "
                                          f"max_input_tokens={limit}")
            else:
                assert failure is None and answer == want[doc_id]
        overall = b1.metric(task, "breakdown")["overall"]
        assert overall["n_failed"] == len(failed) and overall.get("failed", {}) == ({ERROR: len(failed)} if failed
                                                                                    else {})
        assert overall["n"] == LIMIT - len(failed)
    assert f"{len(too_long)} of {2 * LIMIT} request(s) failed" in log(b1)


def test_two_accelerate_processes_equal_one(runs: Runs) -> None:
    dp, single = runs.get("llava_dp2"), runs.get("llava_b4")
    assert "Running on rank 1" in log(dp) and "rank 1/2" in log(dp)
    for task in TASKS:
        assert answers(dp, task) == answers(single, task) and len(answers(dp, task)) == LIMIT
        assert dp.metric(task, "breakdown")["overall"] == single.metric(task, "breakdown")["overall"]


def test_adapter_changes_answers(runs: Runs) -> None:
    lora, base = runs.get("qwen_lora"), runs.get("qwen_b4")
    assert "qwen2vl-lora loaded" in log(lora)
    for task in TASKS:
        with_adapter, without = answers(lora, task), answers(base, task)
        assert with_adapter.keys() == without.keys()
        assert sum(with_adapter[d] != without[d] for d in without) >= LIMIT // 2, (with_adapter, without)


def test_bad_model_arg_stops_the_run_with_one_line(runs: Runs) -> None:
    proc = runs.get("bad_dtype")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert last == "uc_hf_vlm: unknown dtype 'float64'; use one of float32, bfloat16, float16, auto"
    assert not glob.glob(str(runs.root / "bad_dtype" / "**" / "*_results.json"), recursive=True)


# In-process: HFVLM driven with lmms-eval Instances on a tiny task of its own.

DOCS = [{"text": "Is this image safe?" + " Please answer." * i, "image": i % 2 == 0} for i in range(7)]


def _instances(gen_kwargs: dict[str, Any], reverse: bool = False) -> list[Any]:
    from lmms_eval.api.instance import Instance

    image = Image.new("RGB", (40, 30), (200, 20, 20))

    def visual(doc: dict[str, Any]) -> list[Any]:
        return [image] if doc["image"] else []

    out = [Instance("generate_until", (d["text"], dict(gen_kwargs), visual, i, "toy", "test"), 0,
                    {"task": "toy", "doc_id": i, "repeats": 1}) for i, d in enumerate(DOCS)]
    return out[::-1] if reverse else out


def _model(path: Path, **args: Any) -> Any:
    from uc_tasks.models.hf_vlm import HFVLM

    model = HFVLM(pretrained=str(path), device="cpu", dtype="float32", **args)
    model.task_dict = {"toy": {"test": DOCS}}
    return model


GREEDY_KWARGS = {"max_new_tokens": 10, "temperature": 0}
SAMPLED = {"max_new_tokens": 10, "temperature": 1.0, "top_p": 0.9, "do_sample": True, "until": ["\n\n"]}


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_sampling_is_seeded_per_request(tiny: dict[str, Path], family: str) -> None:
    """Sampled answers depend on the seed and the request, not on batch size or request order."""
    one = _model(tiny[family], batch_size=1)
    alone = one.generate_until(_instances(SAMPLED))
    three = _model(tiny[family], batch_size=3)
    assert three.generate_until(_instances(SAMPLED, reverse=True))[::-1] == alone
    other_seed = _model(tiny[family], batch_size=3, seed=7).generate_until(_instances(SAMPLED))
    greedy = one.generate_until(_instances({**SAMPLED, "do_sample": False}))
    assert sum(a != b for a, b in zip(alone, other_seed, strict=True)) >= len(DOCS) // 2
    assert sum(a != b for a, b in zip(alone, greedy, strict=True)) >= len(DOCS) // 2
    assert all(a.strip() for a in alone + other_seed + greedy)


def test_a_failing_batch_is_retried_one_by_one(tiny: dict[str, Path]) -> None:
    """Only the request over ``max_input_tokens`` fails; its batch mates answer as without the limit."""
    free = _model(tiny["qwen"], batch_size=4)
    want = free.generate_until(_instances(GREEDY_KWARGS))
    lengths = []
    for doc in DOCS:
        images = [Image.new("RGB", (40, 30))] if doc["image"] else None
        prompt = free._prompt(doc["text"], len(images or []))
        lengths.append(free.processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[1])
    limit = sorted(lengths)[-2]
    assert lengths.count(max(lengths)) == 1 and limit < max(lengths)
    from loguru import logger

    logged: list[str] = []
    sink = logger.add(logged.append, level="WARNING")
    try:
        got = _model(tiny["qwen"], batch_size=4, max_input_tokens=limit).generate_until(_instances(GREEDY_KWARGS))
    finally:
        logger.remove(sink)
    for length, answer, expected in zip(lengths, got, want, strict=True):
        if length > limit:
            assert parse_failure(answer) == Failure(ERROR, f"InputTooLong: the prompt has {length} tokens, more "
                                                           f"than max_input_tokens={limit}")
        else:
            assert answer == expected and parse_failure(answer) is None
    assert any("a batch of 4 failed" in line and "retrying one by one" in line for line in logged)


def test_placeholder_tokens_are_suppressed_never_eos(tiny: dict[str, Path]) -> None:
    model = _model(tiny["qwen"])
    config, tokenizer = model.config, model.tokenizer
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        assert getattr(config, key) in model.suppress_ids
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in model.suppress_ids
    assert tokenizer.eos_token_id not in model.suppress_ids


def test_pixel_limits_reach_the_image_processor(tiny: dict[str, Path]) -> None:
    model = _model(tiny["qwen"], max_pixels=112 * 112, min_pixels=56 * 56)
    size = model.processor.image_processor.size
    assert (size.longest_edge, size.shortest_edge) == (112 * 112, 56 * 56)
    grid = model.processor.image_processor(images=[Image.new("RGB", (200, 200))], return_tensors="pt")
    assert grid["image_grid_thw"].tolist() == [[1, 8, 8]]  # 112x112 pixels in 14-pixel patches


def test_loglikelihood_is_refused_clearly(tiny: dict[str, Path]) -> None:
    with pytest.raises(NotImplementedError, match="generate_until"):
        _model(tiny["llava"]).loglikelihood(_instances(SAMPLED))


@pytest.mark.parametrize("args, message", [
    ({"dtype": "float64"}, r"unknown dtype 'float64'; use one of float32, bfloat16, float16, auto"),
    ({"pretrained": "/no/such/model"}, r"pretrained=/no/such/model is not a folder"),
    ({"adapter": "/no/such/adapter"}, r"adapter folder /no/such/adapter does not exist"),
    ({"adapter": "{llava}"}, r"holds no adapter_config.json"),
    ({"adapter": "{llava_adapter}"}, r"does not fit pretrained=.*adapter weight\(s\) without a place in the model"),
    ({"pretrained": "{llava}", "max_pixels": 9999}, r"CLIPImageProcessorPil .* takes no min_pixels/max_pixels"),
    ({"batch_size": "auto"}, r"batch_size=auto is not supported"),
    ({"temperature": 0.5}, r"unknown model arg\(s\) temperature"),
    ({"device": "cuda:99"}, r"device=cuda:99 but"),
    ({"trust_remote_code": "maybe"}, r"trust_remote_code='maybe' is not a boolean"),
], ids=["dtype", "pretrained", "adapter-missing", "adapter-not-peft", "adapter-other-model", "max-pixels",
        "batch-auto", "unknown-arg", "device", "bool"])
def test_bad_model_args_are_one_line_errors(tiny: dict[str, Path], args: dict[str, Any], message: str) -> None:
    from uc_tasks.models.hf_load import ModelArgError
    from uc_tasks.models.hf_vlm import HFVLM

    args = {k: str(v).format(**tiny) for k, v in {"pretrained": "{qwen}", "device": "cpu", **args}.items()}
    with pytest.raises(ModelArgError, match=message) as caught:
        HFVLM(**args)
    text = str(caught.value)
    assert text.startswith("uc_hf_vlm: ") and "\n" not in text


def test_bad_generation_kwargs_are_one_line_errors(tiny: dict[str, Path]) -> None:
    from uc_tasks.models.hf_load import ModelArgError

    model = _model(tiny["llava"])
    for kwargs, message in (({"num_beams": 3}, "beam search is not supported"),
                            ({"length_penalty": 2.0}, "length_penalty not supported"),
                            ({"top_p": 1.5}, "top_p=1.5 must be a float")):
        with pytest.raises(ModelArgError, match=message):
            model.generate_until(_instances({**SAMPLED, **kwargs}))
