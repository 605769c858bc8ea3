"""Speed of uc_tasks.stats.bootstrap beside the straightforward computations it replaces, measured in one run.

- Bootstrap CIs at full benchmark size (75 concepts, 7,835 image + 375 text answers, 1,000 resamples):
  the vectorised count paths (three METRICS values, the modality gap, a ratio) beside the generic
  per-resample Python loop over pooled answers (``bootstrap_ci``) for the same accuracy CI.
- Self-BLEU of 345 and 690 answer-like texts of about 80 words: ours for every text, nltk's
  ``sentence_bleu`` for the first ``--nltk-texts`` hypotheses (each against all the others); the nltk
  time for the whole set is extrapolated from its per-hypothesis time (``--nltk-texts 345`` measures all).
- The paired sign-flip test: exact at 20 non-zero pairs, Monte Carlo (10,000) at 75.
Times are the minimum of ``--repeats`` runs.

    .venv/bin/python bench/stats_speed.py [--quick] [--repeats 3] [--nltk-texts 40]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from uc_tasks.metrics import summarize
from uc_tasks.stats import bootstrap as stats
from uc_tasks.stats import diversity


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def outcomes(rng: np.random.Generator, sizes: list[int], p_hit: float) -> dict[str, list[str]]:
    return {f"concept {j:02d}": list(rng.choice(["hit", "miss", "na"], n, p=[p_hit, 0.9 - p_hit, 0.1]))
            for j, n in enumerate(sizes)}


def answers(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    words = ("the image shows a which is considered harmful harmless content may be distressing to some viewers "
             "and it depends on context in shared social media platform guidelines generally safe however "
             "could violate community standards graphic violence nudity symbol hate").split()
    openers = ["No, it is not safe for viewing on social media.", "Yes, it is safe for viewing on social media.",
               "The image features", "It is generally safe to generate such an image. However,"]
    return [rng.choice(openers) + " " + " ".join(rng.choice(words) for _ in range(rng.randint(60, 90)))
            for _ in range(n)]


def bench_bootstrap(repeats: int) -> None:
    rng = np.random.default_rng(0)
    sizes = [int(s) for s in rng.multinomial(7835 - 75, np.ones(75) / 75) + 1]
    image, text = outcomes(rng, sizes, 0.35), outcomes(rng, [5] * 75, 0.8)
    img_sum = {c: summarize(v) for c, v in image.items()}
    txt_sum = {c: summarize(v) for c, v in text.items()}

    def vectorised() -> dict[str, Any]:
        out = {m: stats.bootstrap_metric_ci(img_sum, m) for m in ("accuracy", "accuracy_strict", "na_rate")}
        out["gap"] = stats.bootstrap_gap_ci(img_sum, txt_sum)
        out["ratio"] = stats.bootstrap_ratio_ci({c: s["n_hit"] for c, s in img_sum.items()},
                                                {c: s["n"] - s["n_na"] for c, s in img_sum.items()})
        return out

    t_vec, vec = best_of(repeats, vectorised)
    t_gen, gen = best_of(repeats, lambda: stats.bootstrap_ci(image, lambda o: summarize(o)["accuracy"]))
    same = all(abs(vec["accuracy"][k] - gen[k]) < 1e-12 for k in ("estimate", "ci_low", "ci_high"))
    print(f"bootstrap, 75 concepts x 1000 resamples ({sum(sizes)} image + 375 text answers)")
    print(f"  vectorised: 3 metrics + gap + ratio (5 CIs) {t_vec * 1e3:8.1f} ms  ({t_vec / 5 * 1e3:.1f} ms per CI)")
    print(f"  generic loop over pooled answers, 1 CI      {t_gen * 1e3:8.1f} ms  "
          f"(x{t_gen / (t_vec / 5):.0f} per CI); same accuracy CI: {same}")
    a = vec["accuracy"]
    print(f"  image accuracy {a['estimate']:.4f} [{a['ci_low']:.4f}, {a['ci_high']:.4f}], "
          f"gap {vec['gap']['estimate']:+.4f} [{vec['gap']['ci_low']:+.4f}, {vec['gap']['ci_high']:+.4f}]")


def bench_self_bleu(repeats: int, nltk_texts: int) -> None:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth = SmoothingFunction().method1
    for n in (345, 690):
        texts = answers(n, n)
        words = sum(len(t.split()) for t in texts) / n
        t_ours, ours = best_of(repeats, lambda texts=texts: diversity.self_bleu_scores(texts))
        k = min(nltk_texts, n)
        toks = [t.split() for t in texts]
        t0 = time.perf_counter()
        ref = [sentence_bleu(toks[:i] + toks[i + 1:], toks[i], smoothing_function=smooth) for i in range(k)]
        t_nltk = (time.perf_counter() - t0) / k * n
        diff = max(abs(a - b) for a, b in zip(ours[:k], ref, strict=True))
        label = "measured" if k == n else f"extrapolated from {k} hypotheses"
        print(f"self-BLEU, {n} texts of {words:.0f} words: ours {t_ours:6.2f} s, nltk {t_nltk:7.1f} s ({label}), "
              f"x{t_nltk / t_ours:.0f}; max |ours - nltk| on {k} texts = {diff:.1e}; "
              f"Self-BLEU {sum(ours) / n:.4f}")


def bench_permutation(repeats: int) -> None:
    rng = np.random.default_rng(1)
    for m, label in ((20, "exact, 2^20 sign assignments"), (75, "Monte Carlo, 10,000 resamples")):
        diffs = list(rng.normal(0.2, 0.3, m))
        t, res = best_of(repeats, lambda diffs=diffs: stats.paired_permutation_test(diffs))
        print(f"sign-flip test, {m} pairs ({label}): {t * 1e3:7.1f} ms, p = {res['p_value']:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repeat, nltk on 10 hypotheses")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nltk-texts", type=int, default=40, help="hypotheses nltk scores (345 or 690: all)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    bench_bootstrap(repeats)
    bench_self_bleu(repeats, 10 if args.quick else args.nltk_texts)
    bench_permutation(repeats)


if __name__ == "__main__":
    main()
