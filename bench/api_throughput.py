"""Throughput of ``--model uc_openai`` against a loopback OpenAI-compatible server with fixed latency.

The image-alignment task's 7,835 queries (1,567 synthetic images x 5 prompts) go through
``OpenAIVLM.generate_until`` in-process at 64 concurrent requests; the wall time is compared with the
ideal n x latency / 64, and the request rate with a one-request-at-a-time loop over a subset, timed in
the same run against the same server.

    python bench/api_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-bench-not-a-real-key"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "openai_server.py"), "--latency", str(latency),
                             "--key", KEY], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("URL "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split()[1]


def requests_for(replica: Path, n_images: int) -> tuple[list[SimpleNamespace], dict]:
    """lmms-eval-shaped requests for the image task: 5 prompts per image, images with a stable id."""
    from PIL import Image

    from uc_tasks.data.visuals import IMAGE_ID_KEY
    from uc_tasks.prompts import render

    files = sorted((replica / "images").rglob("*.png"))[:n_images]
    images = []
    for i, f in enumerate(files):
        with Image.open(f) as im:
            img = im.convert("RGB")
        img.info[IMAGE_ID_KEY] = f"bench#{i}"
        images.append(img)
    docs = [{"row_id": i, "prompt_id": p} for i in range(len(images)) for p in range(1, 6)]
    prompts = {p: render(f"alignment/image_p{p}") for p in range(1, 6)}
    gen = {"max_new_tokens": 512, "temperature": 1.0, "top_p": 0.9, "do_sample": True, "until": ["\n\n"]}

    def visual(doc: dict) -> list:
        return [images[doc["row_id"]]]

    reqs = [SimpleNamespace(args=(prompts[d["prompt_id"]], gen, visual, i, "unsafeconcepts_image", "train"))
            for i, d in enumerate(docs)]
    return reqs, {"unsafeconcepts_image": {"train": docs}}


def timed(url: str, reqs: list, task_dict: dict, concurrency: int, cache_dir: Path) -> tuple[float, dict]:
    from uc_tasks.models.api import OpenAIVLM

    model = OpenAIVLM(model="fake-vlm", base_url=url, num_concurrent=concurrency, cache_dir=str(cache_dir))
    model.task_dict = task_dict
    start = time.perf_counter()
    answers = model.generate_until(reqs)
    wall = time.perf_counter() - start
    counters = model.counters()
    model.clean()
    assert len(answers) == len(reqs) and counters["answered"] == len(reqs), counters
    return wall, counters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/5 of the images (1,565 queries)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=50, help="requests in the one-at-a-time loop")
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = KEY

    from uc_tasks.data.synth import write_replica

    with tempfile.TemporaryDirectory() as tmp:
        replica = Path(tmp) / "replica"
        write_replica(replica, size=64)
        reqs, task_dict = requests_for(replica, 313 if args.quick else 1567)
        import uc_tasks.models.api  # noqa: F401  (imports lmms-eval and torch outside the timings)

        server, url = start_server(args.latency)
        try:
            wall, counters = timed(url, reqs, task_dict, args.concurrency, Path(tmp) / "c1")
            seq = reqs[: args.sequential]
            seq_wall, _ = timed(url, seq, task_dict, 1, Path(tmp) / "c2")
        finally:
            server.kill()
    n = len(reqs)
    ideal = n * args.latency / args.concurrency
    rate, seq_rate = n / wall, len(seq) / seq_wall
    print(f"queries: {n} ({n // 5} images x 5 prompts), latency {args.latency:g} s, {args.concurrency} concurrent")
    print(f"images encoded: {counters['images_encoded']}, HTTP requests: {counters['sent']}")
    print(f"concurrent wall: {wall:.2f} s; ideal {ideal:.2f} s; ratio {wall / ideal:.3f} (target <= 1.25)")
    print(f"concurrent rate: {rate:.1f} req/s; sequential ({len(seq)} requests): {seq_rate:.2f} req/s; "
          f"speed-up {rate / seq_rate:.1f}x (target >= 50x)")


if __name__ == "__main__":
    main()
