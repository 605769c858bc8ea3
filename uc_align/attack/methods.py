"""The attack's objective and the two white-box methods (FGSM, PGD) under an L-infinity budget in pixel space.

Objective (maximised): ``log p(safe opening | image, prompt)``, the log-likelihood of the opening words of the
safe verdict's target sentence (teacher forced after the chat-templated prompt). The opening is derived from the
prompt's two target sentences (``prompts/targets/safe_pK`` and ``unsafe_pK``, ``uc_align.data.target_sentence``):
the words of the safe sentence up to and including the first word where it differs from the unsafe one
("Yes," for the 5 image prompts today). The attack only raises the safe opening; it does not push the unsafe
opening down explicitly.

- FGSM: ``x0 + eps sign(grad)``, one gradient.
- PGD: ``steps`` signed-gradient steps of ``step_size`` (default ``2.5 eps / steps``), each projected onto the
  epsilon ball and [0, 1]; with ``random_start`` from a uniform point of the ball (per-image seeded generator);
  the final iterate is kept.

Both run on the float pixels and end on the 8-bit grid (``pixels.quantise``): the budget holds on the saved file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from uc_align.attack.pixels import Qwen2VLPixels, project
from uc_align.data import target_sentence
from uc_align.ppo.losses import token_logprobs
from uc_align.ppo.rollout import Item, Rollout, encode, image_token_ids, sequence_inputs
from uc_tasks.scoring import SAFE, UNSAFE

MAX_PROMPT_TOKENS = 100_000  # prompts are never cut (encode's check); the 5 image prompts are short

Objective = Callable[[list[Tensor]], Tensor]


def safe_opening(prompt_id: int, concept: str = "x") -> str:
    """The safe target sentence's words up to the first word where it differs from the unsafe one."""
    safe = target_sentence(SAFE, prompt_id, concept).split()
    unsafe = target_sentence(UNSAFE, prompt_id, concept).split()
    for i, word in enumerate(safe):
        if i >= len(unsafe) or unsafe[i] != word:
            return " ".join(safe[: i + 1])
    raise ValueError(f"prompt {prompt_id}: the safe and unsafe target sentences do not differ")


class SafeOpeningObjective:
    """``log p(safe opening)`` of each image of a batch, a differentiable function of its pixels."""

    def __init__(self, model: Any, processor: Any, pipeline: Qwen2VLPixels, items: list[Item]) -> None:
        self.model, self.pipeline = model, pipeline
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        prompt = encode(processor, items, MAX_PROMPT_TOKENS, image_token_ids(model, processor))
        tok = processor.tokenizer
        ids = [tok(safe_opening(it.prompt_id, it.concept), add_special_tokens=False)["input_ids"] for it in items]
        width = max(len(i) for i in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        tokens = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
        mask = torch.tensor([[1.0] * len(i) + [0.0] * (width - len(i)) for i in ids])
        rollout = Rollout(items, prompt, tokens, mask, torch.ones(len(items), dtype=torch.bool), [])
        self.inputs = {k: v.to(self.device) for k, v in sequence_inputs(rollout).items()}
        self.grid = prompt["image_grid_thw"]
        self.tokens, self.mask = tokens.to(self.device), mask.to(self.device)

    def __call__(self, images: list[Tensor]) -> Tensor:
        """(B,) log-likelihood of each image's safe opening."""
        pixels = self.pipeline.pixel_values(images)
        if not torch.equal(pixels["image_grid_thw"], self.grid):
            raise AssertionError(f"image grid {pixels['image_grid_thw'].tolist()} != processor's {self.grid.tolist()}")
        inputs = {**self.inputs, "pixel_values": pixels["pixel_values"].to(self.device, self.dtype)}
        logits = self.model(**inputs, logits_to_keep=self.tokens.shape[1] + 1).logits[:, :-1].float()
        return (token_logprobs(logits, self.tokens) * self.mask).sum(dim=1)


def gradient(objective: Objective, xs: list[Tensor]) -> tuple[list[Tensor], Tensor]:
    """d objective / d pixels of each image (the images do not interact: the batch's sum is differentiated)."""
    leaves = [x.detach().clone().requires_grad_(True) for x in xs]
    value = objective(leaves)
    grads = torch.autograd.grad(value.sum(), leaves)
    return list(grads), value.detach()


def fgsm(objective: Objective, x0s: list[Tensor], levels: int) -> list[Tensor]:
    """One signed-gradient step of the full budget."""
    if levels == 0:
        return [x.clone() for x in x0s]
    grads, _ = gradient(objective, x0s)
    return [project(x + levels / 255 * g.sign(), x, levels) for x, g in zip(x0s, grads, strict=True)]


def pgd(objective: Objective, x0s: list[Tensor], levels: int, steps: int, step_size: float,
        random_start: bool, generators: list[torch.Generator]) -> list[Tensor]:
    """Projected signed-gradient ascent; ``step_size`` in pixel units ([0, 1])."""
    if levels == 0:
        return [x.clone() for x in x0s]
    radius = levels / 255
    xs = [x.clone() for x in x0s]
    if random_start:
        xs = [project(x + (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device) * radius, x, levels)
              for x, g in zip(x0s, generators, strict=True)]
    for _ in range(steps):
        grads, _ = gradient(objective, xs)
        xs = [project(x + step_size * g.sign(), x0, levels) for x, g, x0 in zip(xs, grads, x0s, strict=True)]
    return xs
