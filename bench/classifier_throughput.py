"""Answers per second of the classifier scorer on CPU: roberta-base size and tiny, batch 64, 8 and 1.

Both models are the authors' architecture (RobertaModel with pooler + Linear on the CLS vector),
built from a config with random weights (speed does not depend on the values): roberta-base's
config (the paper's size; no config.json, so the scorer's built-in roberta-base config is used) and
the tiny test config of tests/tiny_roberta.py. The answers are distinct ~80-word texts cut from the
real English answers in tests/data, so the memo never hits during a timing. The tokenizer is a byte-level
BPE trained here (roberta-base's cannot be downloaded); the mean tokens per answer are printed so
that the figures can be compared with roberta-base's tokenizer (about 1.3 tokens per English word).

Each batch size (64, 8, 1) is timed with a fresh scorer whose classifier is already loaded (the
load time is printed apart); the minimum over ``--repeats`` is reported, and the memoised repeat
(every answer already read once) is shown last.

    .venv/bin/python bench/classifier_throughput.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def answers(n: int, words: int = 80) -> list[str]:
    """``n`` distinct texts of ``words`` words, each the concatenation of consecutive real answers."""
    rows = [json.loads(x) for x in (REPO / "tests/data/alignment_answers.jsonl").read_text().splitlines()]
    pool = [r["answer"] for r in rows if r["style"] != "nonenglish"]  # English, as the paper's answers
    out: list[str] = []
    i = 0
    while len(out) < n:
        tokens: list[str] = []
        while len(tokens) < words:
            tokens += pool[i % len(pool)].split()
            i += 1
        out.append(f"[{len(out)}] " + " ".join(tokens[:words]))
    return out


def time_scorer(scorer, texts: list[str], repeats: int) -> float:
    """Best answers/s over ``repeats`` runs, each on a cleared memo."""
    best = float("inf")
    for _ in range(repeats):
        scorer._memo.clear()
        t = time.perf_counter()
        labels = scorer.read_alignment(texts)
        best = min(best, time.perf_counter() - t)
        assert len(labels) == len(texts)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer answers and one repeat")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (on a shared 2-core machine more threads contend and run slower)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import tiny_roberta as tr
    import torch
    from transformers import AutoTokenizer, RobertaConfig

    from uc_tasks.scoring.classifier import ROBERTA_BASE_CONFIG, ClassifierScorer

    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    # answers timed per model and batch size (roberta-base is slow on CPU: fewer answers)
    sizes = {"roberta-base": {64: 64, 8: 32, 1: 16} if args.quick else {64: 128, 8: 64, 1: 64},
             "tiny": {64: 256, 8: 256, 1: 256} if args.quick else {64: 1024, 8: 1024, 1: 1024}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tok_dir = tr.build_tokenizer(root / "tokenizer", vocab_size=8000)
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        torch.manual_seed(0)
        (root / "base").mkdir()
        base = tr.RobertaClassifier(RobertaConfig(**ROBERTA_BASE_CONFIG), 3)
        torch.save(base.state_dict(), root / "base" / "epoch_10.pt")
        n_params = sum(p.numel() for p in base.parameters())
        del base
        tiny_dir = tr.build_classifier(root / "tiny", tok_dir, 3)
        folders = {"roberta-base": root / "base", "tiny": tiny_dir}

        texts = answers(max(n for v in sizes.values() for n in v.values()))
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
        print(f"CPU, torch threads {torch.get_num_threads()}; answers of 80 words = "
              f"{sum(lengths) / len(lengths):.1f} tokens on average (min {min(lengths)}, max {max(lengths)}); "
              f"roberta-base-size model {n_params / 1e6:.1f}M parameters; best of {repeats}")
        print(f"{'model':<13}{'answers timed':>15}{'b64 ans/s':>11}{'b8 ans/s':>10}{'b1 ans/s':>10}{'b64/b1':>8}"
              f"{'load s':>8}{'memo hit ans/s':>16}")
        for name, folder in folders.items():
            rates, loads = {}, []
            for batch, n in sizes[name].items():
                scorer = ClassifierScorer(alignment=str(folder), tokenizer=str(tok_dir), device="cpu",
                                          batch_size=batch)
                t = time.perf_counter()
                scorer.read_alignment(["warm-up answer that loads the classifier"])
                loads.append(time.perf_counter() - t)
                rates[batch] = time_scorer(scorer, texts[:n], repeats)
            t = time.perf_counter()
            scorer.read_alignment(texts[:n])  # all memoised now
            memo = n / (time.perf_counter() - t)
            counts = "/".join(map(str, sizes[name].values()))
            print(f"{name:<13}{counts:>15}{rates[64]:>11.1f}{rates[8]:>10.1f}{rates[1]:>10.1f}"
                  f"{rates[64] / rates[1]:>7.2f}x{min(loads):>8.2f}{memo:>16.0f}")

if __name__ == "__main__":
    main()
