"""Wall time and peak memory of one PPO step beside an SFT-like forward/backward of the same batch.

A randomly initialised Qwen2-VL is built from a config (``tests/tiny_qwen2vl.py``; nothing is downloaded).
Each mode runs in its own process, so that its peak memory is its own:

- ``ppo``: ``PPOTrainer.ppo_step`` on ``--batch`` items: sampling (``--max-new-tokens``; a random model rarely
  ends, so answers are about that long), reference forward, policy and value forwards, losses, backward
  passes, one AdamW step;
- ``sft``: the same model with the same policy LoRA, one forward/backward of the same prompts with answers of
  the same length (teacher forcing), one AdamW step: what a step costs without sampling, reference or value.

Reported: seconds per step (median of ``--steps`` after one warm-up step), samples per second, peak memory
(CPU: the process's peak resident set; CUDA: ``torch.cuda.max_memory_allocated``), and for PPO the share of
the step spent sampling and the sampled tokens per second.

    python bench/ppo_step.py                                    # tiny model, CPU, batch 32, 32 new tokens
    python bench/ppo_step.py --ppo-epochs 4 --minibatches 2     # the learning test's PPO setting
    python bench/ppo_step.py --size 2b --device cuda --dtype bfloat16 --max-new-tokens 128   # ~2.2B, a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=["tiny", "2b"], default="tiny")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--batch", type=int, default=32, help="rollout batch (paper: 32)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--steps", type=int, default=4, help="timed steps per mode (after one warm-up step)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--ppo-epochs", type=int, default=1, help="passes per rollout batch (paper: 1)")
    p.add_argument("--minibatches", type=int, default=1, help="minibatches per pass (paper: 1)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    p.add_argument("--mode", choices=["ppo", "sft"], help=argparse.SUPPRESS)  # one mode, in a child process
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    return p


def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_mode(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from ppo_testbed import make_items

    from uc_align.ppo import losses
    from uc_align.ppo import model as ppo_model
    from uc_align.ppo.config import PPOConfig
    from uc_align.ppo.rollout import Rollout, encode, image_token_ids
    from uc_align.ppo.trainer import PPOTrainer

    torch.set_num_threads(args.threads)
    items = make_items(args.batch, seed=0)
    config = PPOConfig(model=args.model_dir, out=tempfile.mkdtemp(), rollout_batch_size=args.batch,
                       max_new_tokens=args.max_new_tokens, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                       dtype=args.dtype, gradient_checkpointing=args.gradient_checkpointing, progress=False,
                       save_steps=0, learning_rate=1e-4, max_steps=args.steps + 1, ppo_epochs=args.ppo_epochs,
                       num_minibatches=args.minibatches)
    trainer = PPOTrainer(config, items)
    times, sampling, tokens = [], [], []
    for step in range(args.steps + 1):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        if args.mode == "ppo":
            metrics = trainer.ppo_step(items)
            sampling.append(metrics["rollout_s"])
            tokens.append(metrics["answer_length"] * args.batch)
        else:
            models = trainer.models
            width = args.max_new_tokens
            ids = torch.randint(10, 300, (args.batch, width))
            mask = torch.ones(args.batch, width)
            prompt = encode(trainer.processor, items, 128, image_token_ids(models.peft, trainer.processor))
            device = next(models.peft.parameters()).device
            rollout = Rollout(items, {k: v.to(device) for k, v in prompt.items()}, ids.to(device), mask.to(device),
                              torch.ones(args.batch, dtype=torch.bool), [])
            models.peft.train()
            out = ppo_model.policy_forward(models, rollout)
            (-losses.masked_mean(out.logprobs, rollout.mask)).backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    result = {"mode": args.mode, "step_s": statistics.median(times), "peak_mb": peak_memory_mb(args.device)}
    if args.mode == "ppo":
        result["sampling_share"] = statistics.median(s / t for s, t in zip(sampling[1:], times, strict=True))
        result["sampled_tokens_per_s"] = statistics.median(n / s for n, s in zip(tokens[1:], sampling[1:],
                                                                                  strict=True))
    return result


def main() -> None:
    args = make_parser().parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    from tiny_qwen2vl import build_tiny_qwen2vl

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_qwen2vl(Path(tmp) / "model", size=args.size, dtype=args.dtype, device=args.device)
        results = {}
        for mode in ("ppo", "sft"):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--mode", mode, "--model-dir", str(model_dir)]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode:
                sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ppo, sft = results["ppo"], results["sft"]
    print(f"model {args.size}, {args.device} {args.dtype}, batch {args.batch}, {args.max_new_tokens} new tokens, "
          f"LoRA r {args.lora_r}, PPO {args.ppo_epochs} epoch(s) x {args.minibatches} minibatch(es), gradient "
          f"checkpointing {args.gradient_checkpointing}")
    print(f"{'':<5} {'s/step':>8} {'samples/s':>10} {'peak MB':>9}")
    for name, r in (("PPO", ppo), ("SFT", sft)):
        print(f"{name:<5} {r['step_s']:>8.3f} {args.batch / r['step_s']:>10.1f} {r['peak_mb']:>9.0f}")
    print(f"PPO / SFT: {ppo['step_s'] / sft['step_s']:.1f}x time, {ppo['peak_mb'] / sft['peak_mb']:.2f}x peak memory; "
          f"sampling {ppo['sampling_share']:.0%} of the PPO step, {ppo['sampled_tokens_per_s']:.0f} sampled tokens/s")


if __name__ == "__main__":
    main()
