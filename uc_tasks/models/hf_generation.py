"""Generation settings and per-request seeded sampling for ``uc_hf_vlm``.

Sampling draws each request's tokens from its own random stream (Gumbel-max: the argmax of the
warped logits plus Gumbel noise is a draw from the temperature/top-k/top-p distribution), seeded from
the model's ``seed`` and the request's task and doc id. A request's answer then does not depend on
which other requests share its batch, nor on the process that runs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from uc_tasks.models.hf_load import ModelArgError, as_bool

DEFAULT_MAX_NEW_TOKENS = 512
SUPPORTED = ("max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "num_beams", "until")


@dataclass(frozen=True)
class GenSettings:
    """What a group of requests asks for. ``greedy`` when temperature is 0 or do_sample is false."""

    max_new_tokens: int
    greedy: bool
    temperature: float
    top_p: float | None
    top_k: int | None


def _number(name: str, value: Any, kind: type, low: float, high: float | None = None) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise ModelArgError(f"generation kwarg {name}={value!r} must be a {kind.__name__} {bounds}")
    return number


def parse_gen_kwargs(kwargs: dict[str, Any]) -> GenSettings:
    """The task's ``generation_kwargs`` (with ``--gen_kwargs`` merged in by lmms-eval), checked.

    ``until`` is accepted and not applied (lmms-eval adds ``["\\n\\n"]`` to every task): answers run to EOS or
    ``max_new_tokens``, as in the paper and in ``uc_openai``."""
    unknown = sorted(set(kwargs) - set(SUPPORTED))
    if unknown:
        raise ModelArgError(f"generation kwarg(s) {', '.join(unknown)} not supported (supported: "
                            f"{', '.join(SUPPORTED)}); remove them from the task or --gen_kwargs")
    if kwargs.get("num_beams") not in (None, 1, "1"):
        raise ModelArgError(f"num_beams={kwargs['num_beams']!r}: beam search is not supported; use num_beams=1")
    temperature = _number("temperature", kwargs.get("temperature") or 0.0, float, 0.0)
    do_sample = kwargs.get("do_sample")
    if do_sample is not None:
        do_sample = as_bool("do_sample", do_sample)
    top_p = kwargs.get("top_p")
    top_k = kwargs.get("top_k")
    return GenSettings(
        max_new_tokens=_number("max_new_tokens", kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), int, 1),
        greedy=temperature == 0.0 or do_sample is False,
        temperature=temperature,
        top_p=None if top_p is None else _number("top_p", top_p, float, 0.0, 1.0),
        top_k=None if top_k in (None, 0) else _number("top_k", top_k, int, 1),
    )


def request_seed(seed: int, task: str, split: str, doc_id: int, idx: int, occurrence: int) -> int:
    """A 63-bit seed for one request, stable across runs, processes and machines."""
    key = f"{seed}|{task}|{split}|{doc_id}|{idx}|{occurrence}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") & (2**63 - 1)


class SeededSampler(LogitsProcessor):
    """Turns greedy decoding into sampling with one random stream per batch row (Gumbel-max).

    Row ``i`` draws its ``t``-th noise vector from a generator seeded with ``seeds[i]``, on the logits'
    device; the warpers (temperature, top-k, top-p) are the ones transformers uses for sampling.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float | None, top_k: int | None) -> None:
        self.seeds = seeds
        self.generators: list[torch.Generator] | None = None
        warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(temperature)]
        if top_k is not None:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))
        self.warpers = LogitsProcessorList(warpers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        scores = self.warpers(input_ids, scores.float())
        tiny = torch.finfo(torch.float32).tiny
        uniform = torch.stack([
            torch.rand(scores.shape[-1], generator=g, device=scores.device, dtype=torch.float32)
            for g in self.generators
        ])
        return scores - torch.log(-torch.log(uniform.clamp_(min=tiny, max=1.0 - 1e-7)))
