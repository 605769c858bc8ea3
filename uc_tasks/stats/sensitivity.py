"""Prompt sensitivity: how much one score moves over the prompt templates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def prompt_sensitivity(score_by_prompt: Mapping[Any, float | None], higher_is_better: bool = True) -> dict[str, Any]:
    """Spread of one score over the prompt templates: unweighted mean over prompts, worst and best
    prompt (worst = min when higher is better, as for the alignment score), spread = max - min.
    Prompts with an undefined score (``None``) are left out and listed; ties go to the first prompt id."""
    keys = sorted(score_by_prompt, key=str)
    defined = [(str(k), float(score_by_prompt[k])) for k in keys if score_by_prompt[k] is not None]
    out: dict[str, Any] = {"n_prompts": len(defined), "higher_is_better": higher_is_better,
                           "undefined_prompts": [str(k) for k in keys if score_by_prompt[k] is None]}
    if not defined:
        return {**out, "mean": None, "worst": None, "worst_prompt": None, "best": None, "best_prompt": None,
                "spread": None}
    low = min(defined, key=lambda kv: kv[1])
    high = max(defined, key=lambda kv: kv[1])
    worst, best = (low, high) if higher_is_better else (high, low)
    return {**out, "mean": math.fsum(v for _, v in defined) / len(defined), "worst": worst[1],
            "worst_prompt": worst[0], "best": best[1], "best_prompt": best[0], "spread": high[1] - low[1]}
