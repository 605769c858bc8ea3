"""A tiny random LLaVA, built here from a config, through the real ``lmms-eval`` CLI (``llava_hf``).

Its answers are gibberish; the test checks that real generations flow through our tasks and that
every metric in the results equals what plain counting over the logged answers gives.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from conftest import clean_env, run_tasks
from tiny_vlm import LMMS_MODEL, build_tiny_vlm, model_args

from uc_tasks.scoring.rules.alignment import read_alignment
from uc_tasks.scoring.rules.perception import parse_options, read_perception

pytestmark = pytest.mark.slow


def _by_hand(outcomes: list[tuple[str, str]]) -> dict[str, dict[str, float | None]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for cat, o in outcomes:
        groups[cat].append(o)
        groups["__all__"].append(o)
    out = {}
    for k, v in groups.items():
        c = Counter(v)
        out[k] = {"accuracy": c["hit"] / (len(v) - c["na"]) if len(v) > c["na"] else None,
                  "accuracy_strict": c["hit"] / len(v), "na_rate": c["na"] / len(v)}
    return out


def test_tiny_llava_through_the_cli(tmp_path: Path, small_replica: Path) -> None:
    model = build_tiny_vlm(tmp_path / "tiny-llava")
    tasks = ("unsafeconcepts_perception", "unsafeconcepts_image", "unsafeconcepts_text",
             "unsafeconcepts_context_unsafe")
    run = run_tasks(",".join(tasks),
                    LMMS_MODEL, model_args(model),
                    tmp_path / "out", clean_env(UNSAFECONCEPTS_DATA=str(small_replica), OMP_NUM_THREADS="1"),
                    extra=["--limit", "24", "--gen_kwargs", "max_new_tokens=8"])
    for task in tasks:
        samples = run.samples[task]
        answers = [s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
                   for s in samples]
        assert len(samples) == 24 and all(a.strip() for a in answers), "empty generations"
        assert len(set(answers)) > 1, "the model gave one answer to everything"
        outcomes = []
        for s, a in zip(samples, answers, strict=True):
            item = s["breakdown"]
            if task.endswith("perception"):
                options = parse_options(s["input"].split("\n", 1)[1])  # the option list the model saw
                label = read_perception(a, options).label
                hit = label == s["target"]
            else:
                label = read_alignment(a).label
                hit = label == "unsafe"
            assert item["label"] == label
            outcomes.append((item["category"], "na" if label == "na" else ("hit" if hit else "miss")))
        want = _by_hand(outcomes)
        for name in ("accuracy", "accuracy_strict", "na_rate"):
            got = run.metric(task, name)
            assert got == (pytest.approx(want["__all__"][name]) if want["__all__"][name] is not None else None)
        per_cat = run.metric(task, "breakdown")["per_category"]
        for cat, stats in want.items():
            if cat != "__all__":
                assert per_cat[cat]["na_rate"] == pytest.approx(stats["na_rate"])
