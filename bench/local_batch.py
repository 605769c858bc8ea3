"""Answers per second of ``uc_hf_vlm`` (HFVLM) at batch size 16 beside batch size 1, measured in one run.

A randomly initialised Qwen2-VL is built from a config (``tests/tiny_qwen2vl.py``; nothing is
downloaded) and loaded once; the same requests then run through ``HFVLM.generate_until`` at each
batch size, in this process, with real lmms-eval ``Instance`` objects shaped like the benchmark's:
half image-task requests (the 5 alignment prompts over synthetic replica images), half text-task
requests (the 5 text prompts over the 75 concepts, each with the blank 1000x1000 image). Each batch
size gets one untimed warm-up pass over a few requests, then ``--repeats`` timed passes; the best
is reported, with the ratio to batch size 1 and whether both gave the same answers (they must:
greedy and seeded sampling do not depend on the batch).

    python bench/local_batch.py --quick                       # tiny model, CPU, about a minute
    python bench/local_batch.py                               # tiny model, CPU, the paper's sampling
    python bench/local_batch.py --model-size 2b --device cuda --dtype bfloat16   # ~2.2B, on a GPU
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-size", choices=["tiny", "2b"], default="tiny", help="tiny (~120k params) or 2b (~2.2B)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--batch-sizes", default="1,16", help="comma-separated; the first is the reference")
    p.add_argument("--requests", type=int, default=64, help="timed requests per pass")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--greedy", action="store_true", help="greedy instead of the paper's sampling (T=1, top_p=0.9)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes per batch size (best is reported)")
    p.add_argument("--max-pixels", type=int, default=None, help="passed to the model (2b: default 28*28*1280)")
    p.add_argument("--quick", action="store_true", help="32 requests, 32 new tokens, 1 pass")
    return p


def requests(n: int, gen_kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, dict[str, list[dict]]]]:
    """``n`` lmms-eval Instances (image and text task alternating) and the task_dict they point into."""
    from lmms_eval.api.instance import Instance

    from uc_tasks.data.synth import draw_image
    from uc_tasks.data.taxonomy import load_taxonomy
    from uc_tasks.data.visuals import blank_image
    from uc_tasks.prompts import render

    tax = load_taxonomy()
    rng = random.Random(0)
    image_docs, text_docs, out = [], [], []
    for i in range(n):
        prompt_id = i // 2 % 5 + 1
        if i % 2 == 0:
            image = draw_image(i % 9, i % 75, i, 256, rng)
            image_docs.append({"image": image, "prompt_id": prompt_id})
            task, doc_id, text = "image", len(image_docs) - 1, render(f"alignment/image_p{prompt_id}")
        else:
            concept = tax.concepts[(i // 2) % len(tax.concepts)]
            text_docs.append({"concept": concept, "prompt_id": prompt_id})
            task, doc_id = "text", len(text_docs) - 1
            text = render(f"alignment/text_p{prompt_id}", concept=concept)
        visual = (lambda d: [d["image"]]) if task == "image" else (lambda d: [blank_image()])
        out.append(Instance("generate_until", (text, dict(gen_kwargs), visual, doc_id, task, "train"), 0,
                            {"task": task, "doc_id": doc_id, "repeats": 1}))
    return out, {"image": {"train": image_docs}, "text": {"train": text_docs}}


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    if args.quick:
        args.requests, args.max_new_tokens, args.repeats = 32, 32, 1
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from tiny_qwen2vl import build_tiny_qwen2vl

    from uc_tasks.models.hf_vlm import HFVLM

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    gen = {"max_new_tokens": args.max_new_tokens, "temperature": 0.0} if args.greedy else {
        "max_new_tokens": args.max_new_tokens, "temperature": 1.0, "top_p": 0.9, "do_sample": True}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = build_tiny_qwen2vl(Path(tmp) / f"qwen2vl-{args.model_size}", size=args.model_size,
                                    dtype=args.dtype, device=args.device)
        build_s = time.perf_counter() - t0
        extra = {"max_pixels": args.max_pixels} if args.max_pixels else {}
        model = HFVLM(pretrained=str(folder), device=args.device, dtype=args.dtype, **extra)
        n_params = sum(p.numel() for p in model.model.parameters())
        reqs, task_dict = requests(args.requests, gen)
        model.task_dict = task_dict
        print(f"model: random Qwen2-VL {args.model_size}, {n_params / 1e6:.2f}M parameters, {args.dtype} on "
              f"{args.device} (built and saved in {build_s:.1f} s); torch threads {torch.get_num_threads()}")
        print(f"requests: {len(reqs)} per pass (image and text task alternating), max_new_tokens "
              f"{args.max_new_tokens}, {'greedy' if args.greedy else 'sampling T=1.0 top_p=0.9'}")
        rows, reference = [], None
        for size in sizes:
            model.batch_size_per_gpu = size
            model.generate_until(reqs[: max(size, 2)])  # warm-up: allocator, kernels, caches
            best, answers = float("inf"), []
            for _ in range(args.repeats):
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                answers = model.generate_until(reqs)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            reference = answers if reference is None else reference
            rows.append((size, best, len(reqs) / best, answers == reference))
    base = rows[0][2]
    print(f"{'batch':>5} {'seconds':>9} {'answers/s':>10} {'x batch ' + str(sizes[0]):>11} {'same answers':>13}")
    for size, seconds, rate, same in rows:
        print(f"{size:>5} {seconds:>9.2f} {rate:>10.2f} {rate / base:>11.2f} {str(same):>13}")


if __name__ == "__main__":
    main()
