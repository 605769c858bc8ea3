"""Rule parser throughput on one core: answers per second on realistic, distinct answers.

    python bench/parser_throughput.py [--repeats 5]

Corpus: every labelled answer under tests/data (tuning, held-out and blind sets; written in the
styles of LLaVA-1.5, Qwen2-VL, InstructBLIP and GPT-4V). "Long" is the LLaVA-style subset of at
least 60 words (the issue's typical 80-word answer). Each figure is the best of ``--repeats`` passes
over distinct answers with the memo bypassed; the memo-hit path is shown separately.
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
TARGET = 50_000


def _load(pattern: str) -> list[dict]:
    rows = []
    for path in sorted(DATA.rglob(pattern)):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def _rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def _line(name: str, answers: Sequence[str], rate: float) -> None:
    words = statistics.mean(len(a.split()) for a in answers)
    print(f"{name:48s} {len(answers):5d} answers  {words:5.1f} words  {rate:9,.0f} answers/s  "
          f"({rate / TARGET:.2f}x the 50,000/s target)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="passes per figure; the best is reported")
    args = ap.parse_args()

    rows = _load("*alignment_answers.jsonl")
    answers = list(dict.fromkeys(r["answer"] for r in rows))
    long = list(dict.fromkeys(r["answer"] for r in rows if r["style"] == "llava" and len(r["answer"].split()) >= 60))
    perception = _load("*perception_answers.jsonl")
    p_answers = [(r["answer"], parse_options(r["option_str"])) for r in perception]

    print("rule parser, one core, distinct answers (memo bypassed)")
    _line("alignment, long LLaVA-style (>= 60 words)", long,
          _rate(lambda: [read_alignment(a) for a in long], len(long), args.repeats))
    _line("alignment, all styles", answers,
          _rate(lambda: [read_alignment(a) for a in answers], len(answers), args.repeats))
    _line("perception, all styles", [a for a, _ in p_answers],
          _rate(lambda: [read_perception(a, o) for a, o in p_answers], len(p_answers), args.repeats))
    floor = [a for a in long]

    def lex_only() -> None:  # lower-case, split and look every token up once: no rules at all
        for a in floor:
            text = parse_alignment._normalise(a)
            list(map(parse_alignment._LEX.get, parse_alignment._tokens(text, text.isascii())))

    _line("floor: normalise + split + lexicon lookup only", long, _rate(lex_only, len(long), args.repeats))
    scorer = RuleScorer()
    scorer.read_alignment(answers)
    _line("alignment through RuleScorer, memo hits", answers,
          _rate(lambda: scorer.read_alignment(answers), len(answers), args.repeats))


if __name__ == "__main__":
    main()
