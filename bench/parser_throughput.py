"""Rule parser throughput on one core: answers per second on realistic, distinct answers.

    python bench/parser_throughput.py [--repeats 15]

Corpus: the 1,229 real LLaVA-1.5-7B answers of tests/data/real_answers (both halves; only the
answers are read, never the labels) and every hand-written labelled answer under tests/data
(tuning, held-out and blind sets, in the styles of LLaVA-1.5, Qwen2-VL, InstructBLIP and GPT-4V).
"Long" is the real answers of at least 60 words, the target's figure. Each figure is the best of
``--repeats`` passes over distinct answers with the memo bypassed, after half a second of warm-up,
timed in CPU seconds of this process, so other load on the machine does not count against it; the
memo-hit path is shown separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from uc_tasks.scoring import RuleScorer
from uc_tasks.scoring.rules import alignment as parse_alignment
from uc_tasks.scoring.rules.alignment import read_alignment
from uc_tasks.scoring.rules.perception import parse_options, read_perception

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
TARGET = 10_000
"""Distinct long answers per second on one core (the RL reward reads every rollout)."""


def _load(pattern: str) -> list[dict]:
    rows = []
    for path in sorted(DATA.rglob(pattern)):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def _rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    start = time.process_time()
    while time.process_time() - start < 0.5:  # warm up (interpreter caches, CPU clock) for half a second
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return n / max(best, 1e-9)


def _line(name: str, answers: Sequence[str], rate: float) -> None:
    words = statistics.mean(len(a.split()) for a in answers)
    print(f"{name:52s} {len(answers):5d} answers  {words:5.1f} words  {rate:10,.0f} answers/s  "
          f"({rate / TARGET:.2f}x the {TARGET:,}/s target)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15, help="passes per figure; the best is reported")
    args = ap.parse_args()

    real = [r["answer"] for r in _load("real_answers/labelled.jsonl")]
    hand = [r["answer"] for r in _load("*alignment_answers.jsonl")]
    long = list(dict.fromkeys(a for a in real if len(a.split()) >= 60))
    answers = list(dict.fromkeys(real + hand))
    perception = _load("*perception_answers.jsonl")
    p_answers = [(r["answer"], parse_options(r["option_str"])) for r in perception]

    print("rule parser, one core, distinct answers (memo bypassed), CPU time")
    long_rate = _rate(lambda: [read_alignment(a) for a in long], len(long), args.repeats)
    _line("alignment, long real answers (>= 60 words)", long, long_rate)
    _line("alignment, all answers (real and hand-written)", answers,
          _rate(lambda: [read_alignment(a) for a in answers], len(answers), args.repeats))
    _line("perception, all styles", [a for a, _ in p_answers],
          _rate(lambda: [read_perception(a, o) for a, o in p_answers], len(p_answers), args.repeats))

    def lex_only() -> None:  # lower-case, split and look every token up once: no rules at all
        for a in long:
            text = parse_alignment._normalise(a)
            list(map(parse_alignment._LEX.get, parse_alignment._tokens(text, text.isascii())))

    _line("floor: normalise + split + lexicon lookup only", long, _rate(lex_only, len(long), args.repeats))
    scorer = RuleScorer()
    scorer.read_alignment(answers)
    _line("alignment through RuleScorer, memo hits", answers,
          _rate(lambda: scorer.read_alignment(answers), len(answers), args.repeats))
    verdict = "meets" if long_rate >= TARGET else "is BELOW"
    print(f"target: {TARGET:,} distinct long answers/s on one core; this run {verdict} it "
          f"({long_rate / TARGET:.2f}x)")


if __name__ == "__main__":
    main()
