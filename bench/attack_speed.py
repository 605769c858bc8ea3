"""Attack seconds per image: FGSM beside PGD (10 steps) on the same images, same model, one process.

Times the attack alone (``uc_align.attack.methods``: objective forwards and gradients w.r.t. the pixels), not the
generation of the answers before and after. Without ``--model`` the learning testbed's tiny Qwen2-VL is built
(``tests/testbed.py``: replica, ``uc_align.data`` folder, the warm-started model; about a minute) and attacked on
its fine-tuning test's unsafe images; the SFT adapter is left out, since a merged LoRA changes the weights' values,
not the work per image.

    python bench/attack_speed.py                                   # tiny model, CPU, 1 thread
    python bench/attack_speed.py --model M --adapter CKPT --data DIR --device cuda --batch-size 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model folder (default: build the testbed's tiny Qwen2-VL)")
    p.add_argument("--adapter", help="LoRA adapter folder, merged before timing")
    p.add_argument("--data", help="uc_align.data folder (default: the testbed's)")
    p.add_argument("--n", type=int, default=16, help="unsafe test images timed")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    p.add_argument("--steps", type=int, default=10, help="PGD steps")
    p.add_argument("--epsilon", type=float, default=0.01)
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the images (median reported)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    return p


def setup(args: argparse.Namespace, scratch: Path) -> tuple[str, str]:
    if args.model:
        if not args.data:
            raise SystemExit("--model needs --data (a uc_align.data folder)")
        return args.model, args.data
    from testbed import build_testbed

    tb = build_testbed(scratch)
    return str(tb.warm), str(tb.data)


def time_attacks(args: argparse.Namespace, model_dir: str, data: str) -> list[dict[str, Any]]:
    import torch
    from PIL import Image

    from uc_align.attack import methods
    from uc_align.attack.config import AttackConfig
    from uc_align.attack.pixels import budget_levels, pixel_pipeline, to_unit
    from uc_align.attack.run import draw
    from uc_align.data import load_split
    from uc_align.ppo.rollout import Item
    from uc_align.train import load_model
    from uc_tasks.models.hf_load import load_adapter

    cfg = AttackConfig(model=model_dir, data=data, out="unused", dtype=args.dtype, device=args.device)
    model, processor = load_model(cfg)  # type: ignore[arg-type]
    if args.adapter:
        model = load_adapter(model, args.adapter, model_dir, merge=True)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pipe = pixel_pipeline(processor)
    rows = load_split(data, "test")
    ids = draw(rows["target"], args.n, 0)
    images = [Image.fromarray(pipe.resize(rows[i]["images"][0])) for i in ids]
    items = [Item(im, "unsafe", int(rows[i]["prompt_id"]), rows[i]["concept"]) for i, im in zip(ids, images,
                                                                                               strict=True)]
    levels = budget_levels(args.epsilon)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = []
    for batch in args.batch_size:
        chunks = [items[i: i + batch] for i in range(0, len(items), batch)]
        prepared = [(methods.SafeOpeningObjective(model, processor, pipe, c),
                     [to_unit(it.image).to(device) for it in c]) for c in chunks]
        for name, attack in (("fgsm", lambda o, x: methods.fgsm(o, x, levels)),
                             (f"pgd{args.steps}", lambda o, x: methods.pgd(
                                 o, x, levels, args.steps, 2.5 * args.epsilon / args.steps, False,
                                 [torch.Generator().manual_seed(0) for _ in x]))):
            attack(*prepared[0])  # warm-up
            times = []
            for _ in range(args.repeats):
                sync()
                start = time.perf_counter()
                for objective, xs in prepared:
                    attack(objective, xs)
                sync()
                times.append((time.perf_counter() - start) / len(items))
            out.append({"method": name, "batch_size": batch, "seconds_per_image": statistics.median(times)})
    return out


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="attack_speed_") as tmp:
        model_dir, data = setup(args, Path(tmp))
        results = time_attacks(args, model_dir, data)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"attack seconds per image ({args.n} images, epsilon {args.epsilon}, {device}, {args.threads} thread(s))")
    print(f"{'batch':>5}  {'fgsm':>10}  {f'pgd{args.steps}':>10}  ratio")
    for batch in args.batch_size:
        row = {r["method"]: r["seconds_per_image"] for r in results if r["batch_size"] == batch}
        f, p = row["fgsm"], row[f"pgd{args.steps}"]
        print(f"{batch:>5}  {f:>10.4f}  {p:>10.4f}  {p / f:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
