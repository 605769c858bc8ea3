"""Rollouts: the policy's sampled answers to the paper's image prompts, as tensors PPO can score.

One rollout batch = one answer per item, sampled with the paper's settings (temperature 1.0, top_p 1,
top_k 0, at most 512 new tokens). Prompts are the benchmark's templates (``prompts/alignment/image_p{k}``,
rendered by ``uc_tasks.prompts.render``), put in the model's chat template with one image, left padded.
Special tokens (image placeholders, pad, BOS; never EOS) are suppressed while sampling: a sampled image
token would break the next forward (image tokens vs image features). The answer is cut after its first
EOS (``losses.completion_mask``); the tokens after it are padding and masked everywhere.

The caller puts the model in generation mode (``model.generation_mode``: eval, gradient checkpointing
off, policy adapter on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from uc_align.ppo.losses import completion_mask
from uc_tasks.models.special_tokens import eos_token_ids, image_token_ids, suppressed_ids
from uc_tasks.prompts import render


class EngineError(RuntimeError):
    """A rollout engine cannot sample, or samples from another policy; the message says what to do."""


@dataclass
class Item:
    """One training or held-out question: an image, its true label and which of the 5 prompts asks it."""

    image: Image.Image
    target: str  # "safe" / "unsafe"
    prompt_id: int = 1
    concept: str = ""
    category: str = ""

    @property
    def meta(self) -> dict[str, Any]:
        return {"concept": self.concept, "category": self.category, "prompt_id": self.prompt_id}


@dataclass
class Rollout:
    """A batch of sampled answers. ``prompt`` holds the processor's tensors (left padded, width P);
    ``tokens``/``mask`` (B, T) the answers, 1.0 up to and including the first EOS."""

    items: list[Item]
    prompt: dict[str, Tensor]
    tokens: Tensor
    mask: Tensor
    has_eos: Tensor
    answers: list[str]
    lengths: list[int] = field(default_factory=list)
    """Answer tokens without the EOS (what the length bonus counts)."""
    sampler_logprobs: Tensor | None = None
    """(B, T) the sampling engine's own log-prob of each answer token (vLLM's, at temperature 1, before any
    logit processing; 0 past the answer), to compare with the trainer's; None from ``sample``."""

    @property
    def prompt_width(self) -> int:
        return int(self.prompt["input_ids"].shape[1])


def prompt_text(processor: Any, prompt_id: int) -> str:
    """The chat-templated prompt: one image, then the paper's image prompt ``prompt_id`` (1-5)."""
    question = render(f"alignment/image_p{prompt_id}")
    content = [{"type": "image"}, {"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)


def encode(processor: Any, items: list[Item], max_prompt_tokens: int, image_ids: set[int]) -> dict[str, Tensor]:
    """The processor's tensors for ``items``, left padded; a prompt over ``max_prompt_tokens`` text tokens
    stops the run (never truncated: a cut prompt is a different question)."""
    processor.tokenizer.padding_side = "left"
    texts = [prompt_text(processor, it.prompt_id) for it in items]
    inputs = dict(processor(text=texts, images=[it.image.convert("RGB") for it in items], padding=True,
                            return_tensors="pt"))
    is_image = torch.isin(inputs["input_ids"], torch.tensor(sorted(image_ids)))
    text_tokens = (inputs["attention_mask"].bool() & ~is_image).sum(dim=1)
    if int(text_tokens.max()) > max_prompt_tokens:
        i = int(text_tokens.argmax())
        raise ValueError(f"prompt {items[i].prompt_id} has {int(text_tokens[i])} text tokens, more than "
                         f"max_prompt_tokens={max_prompt_tokens}; raise max_prompt_tokens")
    return inputs


@torch.no_grad()
def sample(model: Any, processor: Any, items: list[Item], *, max_new_tokens: int, temperature: float,
           top_p: float, top_k: int, max_prompt_tokens: int, greedy: bool = False, cache: str = "dynamic") -> Rollout:
    """Sample one answer per item (``greedy``: the most likely one, for evaluation); ``cache="static"``: a
    fixed-size KV cache (transformers compiles the decoding step with it on CUDA)."""
    device = next(model.parameters()).device
    prompt = encode(processor, items, max_prompt_tokens, image_token_ids(model, processor))
    prompt = {k: v.to(device) for k, v in prompt.items()}
    eos = eos_token_ids(model, processor)
    pad = processor.tokenizer.pad_token_id if processor.tokenizer.pad_token_id is not None else eos[0]
    sampling = ({"do_sample": False} if greedy else
                {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k})
    out = model.generate(**prompt, **sampling, max_new_tokens=max_new_tokens, min_new_tokens=0,
                         suppress_tokens=suppressed_ids(model, processor), eos_token_id=eos, pad_token_id=pad,
                         use_cache=True, **({"cache_implementation": "static"} if cache == "static" else {}))
    tokens = out[:, prompt["input_ids"].shape[1]:]
    mask, has_eos = completion_mask(tokens, eos)
    tokens = torch.where(mask.bool(), tokens, torch.full_like(tokens, pad))
    lengths = [int(n) - int(e) for n, e in zip(mask.sum(dim=1).tolist(), has_eos.tolist(), strict=True)]
    texts = processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
    return Rollout(items, prompt, tokens, mask, has_eos, [t.strip() for t in texts], lengths)


def sequence_inputs(rollout: Rollout, rows: Tensor | None = None) -> dict[str, Tensor]:
    """Model inputs for prompt + answer (rows ``rows`` of the batch, all by default): the answer's padding
    is masked out of attention; ``mm_token_type_ids`` (Qwen2-VL) is extended with zeros over the answer."""
    prompt, tokens, mask = rollout.prompt, rollout.tokens, rollout.mask
    if rows is not None:
        prompt, tokens, mask = take(prompt, rows), tokens[rows], mask[rows]
    out = {k: v for k, v in prompt.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    out["input_ids"] = torch.cat([prompt["input_ids"], tokens], dim=1)
    out["attention_mask"] = torch.cat([prompt["attention_mask"], mask.to(prompt["attention_mask"].dtype)], dim=1)
    if "mm_token_type_ids" in prompt:
        kinds = prompt["mm_token_type_ids"]
        out["mm_token_type_ids"] = torch.cat([kinds, torch.zeros_like(tokens, dtype=kinds.dtype)], dim=1)
    return out


def take(inputs: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    """Rows ``rows`` of a batch of processor tensors. Qwen2-VL-style ``pixel_values`` hold every image's
    patches flattened one after another (``image_grid_thw`` says how many each): those are sliced per image."""
    rows_list = rows.tolist()
    out = {}
    for k, v in inputs.items():
        if k == "pixel_values" and "image_grid_thw" in inputs:
            sizes = inputs["image_grid_thw"].prod(dim=1).tolist()
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            out[k] = torch.cat([v[starts[i]: starts[i] + sizes[i]] for i in rows_list])
        else:
            out[k] = v[rows]
    return out
