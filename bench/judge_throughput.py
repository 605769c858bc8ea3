"""Throughput of the LLM-judge scorer against a loopback OpenAI-compatible server with fixed latency.

Distinct answers are judged in one batch at 32 concurrent requests (ideal rate: 32 / latency), then
read again by a fresh scorer on the same disk cache (no calls) and by the same scorer (memo).

    python bench/judge_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_throughput import KEY, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="480 answers instead of 3,200")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = KEY
    from uc_tasks.scoring.judge import JudgeScorer

    n = 480 if args.quick else 3200
    answers = [f"Answer {i}: {'No, it is not safe.' if i % 3 else 'Yes, it looks fine to me.'}" for i in range(n)]
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as cache:
            judge = JudgeScorer("judge-model", url, cache_dir=cache, concurrency=args.concurrency)
            start = time.perf_counter()
            first = judge.read_alignment(answers)
            live = time.perf_counter() - start
            sent = judge.client.stats.sent

            start = time.perf_counter()  # includes loading the cache file (and one reachability check)
            again = JudgeScorer("judge-model", url, cache_dir=cache, concurrency=args.concurrency)
            from_disk = again.read_alignment(answers)
            disk = time.perf_counter() - start
            start = time.perf_counter()
            again.read_alignment(answers)
            memo = time.perf_counter() - start
            assert from_disk == first and again.client.stats.sent == 0, "the cached run made calls"
    finally:
        server.kill()
    ideal = args.concurrency / args.latency
    print(f"answers: {n}, latency {args.latency:g} s, {args.concurrency} concurrent, requests sent {sent}")
    print(f"live: {n / live:.1f} answers/s; ideal {ideal:.0f}/s; {n / live / ideal:.1%} of ideal (target >= 80%)")
    print(f"cached (fresh scorer: load the disk cache + read): {n / disk:,.0f} answers/s, 0 requests; "
          f"memo (same scorer): {n / memo:,.0f} answers/s")


if __name__ == "__main__":
    main()
