"""Every number PPO computes from a rollout, as plain tensor functions (no model, no state).

Shapes: ``(B, T)`` over the B answers of a rollout batch and the T answer-token positions; ``mask``
is 1.0 on an answer's real tokens (up to and including its first EOS) and 0.0 on the padding after
it. Unlike the authors' code, every term below is computed over real tokens only (their whitening,
losses and entropy also averaged over padding), and the sequence reward sits on the last real token
(theirs sat in the last padded slot, index 511).

The order in which the trainer uses them, with the paper's constants:

1. ``kl_penalty``: ``0.1 x clamp(log pi - log pi_ref, min 0)`` per token (k1 estimator, fixed coefficient).
2. ``token_rewards``: minus the KL penalty on every token, plus the shaped answer score
   (``uc_align.ppo.reward.shape``) on the last real token; the whole thing x10.
3. ``gae``: advantages with gamma = lambda = 1 (the return-to-go minus the value), returns =
   advantages + values, computed before ``whiten`` whitens the advantages over the batch.
4. ``policy_loss``: the clipped surrogate (clip 0.2); the trainer subtracts 0.02 x mean ``entropy``.
5. ``value_loss``: ``0.5 x max((V - R)^2, (V_clipped - R)^2)`` with V clipped to old V +- 0.2; x0.1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (all of them, or along ``dim``)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor) -> Tensor:
    """Unbiased variance of ``x`` over the masked positions (Bessel-corrected, as TRL's ``masked_var``)."""
    n = mask.sum()
    centred = (x - masked_mean(x, mask)) * mask
    return (centred**2).sum() / (n - 1).clamp(min=1)


def whiten(x: Tensor, mask: Tensor, eps: float = 1e-8, total: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the masked positions (unbiased variance); padding stays 0. ``total``
    sums a statistic over data parallel processes, so that the whole batch's mean and variance are used."""
    total = total or (lambda t: t)
    n = total(mask.sum())
    mean = total((x * mask).sum()) / n.clamp(min=1)
    var = total((((x - mean) * mask) ** 2).sum()) / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def completion_mask(tokens: Tensor, eos_ids: list[int]) -> tuple[Tensor, Tensor]:
    """(mask, has_eos) of sampled answer ``tokens`` (B, T): 1.0 up to and including the first EOS."""
    is_eos = torch.isin(tokens, torch.tensor(eos_ids, device=tokens.device))
    has_eos = is_eos.any(dim=1)
    none = torch.full_like(has_eos, tokens.shape[1], dtype=torch.long)
    first = torch.where(has_eos, is_eos.int().argmax(dim=1), none)
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    mask = (positions[None, :] <= first[:, None]).float()
    return mask, has_eos


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, coef: float) -> Tensor:
    """Per-token ``coef x clamp(log pi - log pi_ref, min 0)`` (the paper's clamped k1 penalty)."""
    return coef * (logprobs - ref_logprobs).clamp(min=0)


def token_rewards(scores: Tensor, penalty: Tensor, mask: Tensor, scale: float) -> Tensor:
    """``scale x (-penalty + score on the last real token)`` per token, 0 on padding.

    ``scores`` (B,) is each answer's shaped score, ``penalty`` (B, T) the per-token KL penalty."""
    rewards = -penalty * mask
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rewards = rewards.scatter_add(1, last[:, None], scores[:, None].to(rewards.dtype))
    return scale * rewards


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns (both (B, T), 0 on padding).

    ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``A_t = delta_t + gamma lam A_{t+1}``, with V and A zero after
    the last real token; returns are ``A + V``, taken before the advantages are whitened."""
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                clip: float) -> tuple[Tensor, Tensor]:
    """(clipped surrogate loss, clip fraction): ``mean(max(-A r, -A clamp(r, 1 - clip, 1 + clip)))`` over real
    tokens, with ``r = exp(log pi - log pi_old)``; the clip fraction is the share of tokens where clipping won."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip: float) -> tuple[Tensor, Tensor]:
    """(``0.5 x mean(max((V - R)^2, (V_clipped - R)^2))``, clip fraction), V_clipped = old V +- ``clip``."""
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def entropy(logits: Tensor) -> Tensor:
    """Per-position entropy of the categorical distribution of ``logits`` (..., V), in nats."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(token) under ``logits`` (B, T, V) for ``tokens`` (B, T)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens[..., None]).squeeze(-1)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over real tokens (1: the value predicts the returns; 0: no better than
    their mean; NaN when the returns do not vary)."""
    var_returns = masked_var(returns, mask)
    if var_returns.item() == 0:
        return float("nan")
    return float(1 - masked_var(returns - values, mask) / var_returns)
