"""Answer diversity as in the paper: 1 - Self-BLEU (the paper, and the authors' evaluation code), exact and fast.

Each answer is the hypothesis against all other answers of its set; the result equals nltk's
``sentence_bleu`` (checked in tests) without its quadratic cost.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

DIVERSITY_MAX_ANSWERS = 500
"""Above this many answers, ``answer_diversity`` uses a seeded sample of this size."""


SELF_BLEU_METHOD = ("nltk sentence_bleu (BLEU-4, uniform weights, smoothing method1 epsilon 0.1), whitespace "
                    "tokens; each text is the hypothesis against all other texts of the set as references")


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False)) if len(tokens) >= n else Counter()


def self_bleu_scores(texts: Sequence[str]) -> list[float]:
    """Sentence BLEU of each text against all the others, equal to nltk's ``sentence_bleu(others, text,
    smoothing_function=SmoothingFunction().method1)`` on ``str.split()`` tokens, in O(total n-grams):
    per n-gram the largest and second largest count over texts, so the reference max count without the
    hypothesis itself is the second largest when the hypothesis holds the largest. Closest reference
    length (ties: the shorter) from the sorted lengths minus the hypothesis' own."""
    if any(not isinstance(t, str) for t in texts):
        raise ValueError("self_bleu: texts must be strings (the model answers)")
    if len(texts) < 2:
        return []
    tokens = [t.split() for t in texts]
    counts = [[_ngrams(tok, n) for n in (1, 2, 3, 4)] for tok in tokens]
    top: list[dict[tuple[str, ...], list[int]]] = [{} for _ in range(4)]  # ngram -> [first, owner, second]
    for i, per_order in enumerate(counts):
        for order, table in zip(top, per_order, strict=True):
            for g, c in table.items():
                e = order.get(g)
                if e is None:
                    order[g] = [c, i, 0]
                elif c > e[0]:
                    e[0], e[1], e[2] = c, i, e[0]
                elif c > e[2]:
                    e[2] = c
    length_count = Counter(len(tok) for tok in tokens)
    lengths = sorted(length_count)
    scores = []
    for i, per_order in enumerate(counts):
        nums, dens = [], []
        for order, table in zip(top, per_order, strict=True):
            num = 0
            for g, c in table.items():
                e = order[g]
                num += min(c, e[2] if e[1] == i else e[0])
            nums.append(num)
            dens.append(max(1, sum(table.values())))
        if nums[0] == 0:
            scores.append(0.0)
            continue
        hyp = len(tokens[i])
        if length_count[hyp] > 1:
            ref = hyp
        else:
            pos = bisect.bisect_left(lengths, hyp)
            near = [lengths[j] for j in (pos - 1, pos + 1) if 0 <= j < len(lengths)]
            ref = min(near, key=lambda r: (abs(r - hyp), r))
        bp = 1.0 if hyp > ref else math.exp(1 - ref / hyp)
        p = [n / d if n else (n + 0.1) / d for n, d in zip(nums, dens, strict=True)]
        scores.append(bp * math.exp(math.fsum(0.25 * math.log(x) for x in p)))
    return scores


def self_bleu(texts: Sequence[str]) -> dict[str, Any]:
    """Mean Self-BLEU of a set of answers (as the paper computes it) and diversity = 1 - Self-BLEU; ``None`` with
    fewer than two texts (no references). Call it once per subset (all / safe / unsafe)."""
    scores = self_bleu_scores(texts)
    mean = math.fsum(scores) / len(scores) if scores else None
    return {"self_bleu": mean, "diversity": None if mean is None else 1 - mean, "n_texts": len(texts),
            "method": SELF_BLEU_METHOD}


def answer_diversity(answers: Sequence[str], seed: int, max_answers: int | None = DIVERSITY_MAX_ANSWERS
                     ) -> dict[str, Any]:
    """1 - Self-BLEU of the answers, on a seeded sample of ``max_answers`` when there are more (None: all)."""
    used = list(answers)
    sampled = max_answers is not None and len(used) > max_answers
    if sampled:
        used = random.Random(seed).sample(used, max_answers)
    return {**self_bleu(used), "n_answers": len(answers), "n_used": len(used), "sampled": sampled,
            "seed": seed if sampled else None}
