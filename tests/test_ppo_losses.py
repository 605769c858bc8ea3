"""Every PPO term against numbers worked out by hand (the arithmetic is in the comments). No model."""

from __future__ import annotations

import math

import ppo_testbed  # noqa: F401  (puts the checkout on sys.path for uc_align)
import pytest
import torch

from uc_align.ppo import losses
from uc_align.ppo.reward import min_max, shape


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(list(rows), dtype=torch.float64)


def same(x: torch.Tensor, expected: list) -> None:
    """``x`` equals the hand-computed ``expected`` (nested lists) to float precision."""
    torch.testing.assert_close(x, torch.tensor(expected, dtype=x.dtype), rtol=1e-6, atol=1e-9)


X = t([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
M = t([1.0, 1.0, 0.0], [1.0, 0.0, 0.0])  # real values: 1, 2, 4


def test_masked_mean_counts_real_positions_only() -> None:
    assert losses.masked_mean(X, M).item() == pytest.approx(7 / 3)  # (1 + 2 + 4) / 3
    assert losses.masked_mean(X, M, dim=1).tolist() == pytest.approx([1.5, 4.0])


def test_masked_var_is_unbiased_over_real_positions() -> None:
    # deviations from 7/3: -4/3, -1/3, 5/3 -> squares 16/9 + 1/9 + 25/9 = 42/9, / (3 - 1) = 7/3
    assert losses.masked_var(X, M).item() == pytest.approx(7 / 3)


def test_whiten_centres_and_scales_real_positions_and_leaves_padding_zero() -> None:
    w = losses.whiten(X, M, eps=0.0)
    s = math.sqrt(7 / 3)
    same(w, [[(1 - 7 / 3) / s, (2 - 7 / 3) / s, 0.0], [(4 - 7 / 3) / s, 0.0, 0.0]])
    assert losses.masked_mean(w, M).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.masked_var(w, M).item() == pytest.approx(1.0)


def test_completion_mask_keeps_the_first_eos_and_drops_what_follows() -> None:
    tokens = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0], [5, 9, 3, 4]])
    mask, has_eos = losses.completion_mask(tokens, eos_ids=[2, 9])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert has_eos.tolist() == [True, False, True, True]


def test_kl_penalty_is_clamped_k1_times_the_coefficient() -> None:
    # log pi - log pi_ref = 0.5, -1.0, 0 -> clamp(min 0) = 0.5, 0, 0 -> x 0.1
    pen = losses.kl_penalty(t([-1.0, -2.0, -0.5]), t([-1.5, -1.0, -0.5]), coef=0.1)
    same(pen, [[0.05, 0.0, 0.0]])


def test_token_rewards_put_the_score_on_the_last_real_token_and_scale_everything() -> None:
    scores = torch.tensor([1.0, -1.0], dtype=torch.float64)
    pen = t([0.05, 0.0, 0.02], [0.01, 0.03, 0.04])
    mask = t([1.0, 1.0, 0.0], [1.0, 1.0, 1.0])
    r = losses.token_rewards(scores, pen, mask, scale=10.0)
    # row 0: -0.05, -0 + 1 (last real token), padding 0;  row 1: -0.01, -0.03, -0.04 - 1;  all x10
    same(r, [[-0.5, 10.0, 0.0], [-0.1, -0.3, -10.4]])


def test_gae_with_gamma_lambda_one_is_return_to_go_minus_value() -> None:
    rewards, values, mask = t([-0.5, 10.0, 0.0]), t([1.0, 2.0, 99.0]), t([1.0, 1.0, 0.0])
    adv, ret = losses.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # t=1: 10 + 0 - 2 = 8;  t=0: -0.5 + 2 - 1 = 0.5, + 8 = 8.5;  padding (value 99) ignored
    same(adv, [[8.5, 8.0, 0.0]])
    same(ret, [[9.5, 10.0, 0.0]])  # = -0.5 + 10 and 10: the return to go


def test_gae_with_discount() -> None:
    rewards, values, mask = t([-0.5, 10.0, 0.0]), t([1.0, 2.0, 99.0]), t([1.0, 1.0, 0.0])
    adv, ret = losses.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # t=1: 10 + 0.9 * 0 - 2 = 8;  t=0: delta = -0.5 + 0.9 * 2 - 1 = 0.3, A = 0.3 + 0.45 * 8 = 3.9
    same(adv, [[3.9, 8.0, 0.0]])
    same(ret, [[4.9, 10.0, 0.0]])


def test_policy_loss_is_the_pessimistic_clipped_surrogate_over_real_tokens() -> None:
    logp = torch.log(t([1.0, 1.5, 0.5, 7.0]))  # ratios 1, 1.5, 0.5 (old log-probs 0); the 4th is padding
    adv, mask = t([1.0, 1.0, -2.0, 100.0]), t([1.0, 1.0, 1.0, 0.0])
    loss, clip_frac = losses.policy_loss(logp, torch.zeros_like(logp), adv, mask, clip=0.2)
    # -A r: -1, -1.5, 1.0;  -A clip(r, 0.8, 1.2): -1, -1.2, 1.6;  max: -1, -1.2, 1.6 -> mean -0.6 / 3
    assert loss.item() == pytest.approx(-0.2)
    assert clip_frac.item() == pytest.approx(2 / 3)


def test_value_loss_is_half_the_pessimistic_clipped_squared_error() -> None:
    values, old, returns = t([1.0, 3.0, 0.5, 50.0]), t([0.9, 2.0, 1.0, 0.0]), t([2.0, 2.0, 0.0, 0.0])
    mask = t([1.0, 1.0, 1.0, 0.0])
    loss, clip_frac = losses.value_loss(values, old, returns, mask, clip=0.2)
    # clipped V: 1.0, 2.2, 0.8;  (V - R)^2: 1, 1, 0.25;  (Vc - R)^2: 1, 0.04, 0.64;  max: 1, 1, 0.64
    assert loss.item() == pytest.approx(0.5 * 2.64 / 3)
    assert clip_frac.item() == pytest.approx(1 / 3)


def test_entropy_and_token_logprobs() -> None:
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])  # probabilities (.5, .5) and (.25, .75)
    same(losses.entropy(logits), [[math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]])
    same(losses.token_logprobs(logits, torch.tensor([[0, 1]])), [[math.log(0.5), math.log(0.75)]])


def test_explained_variance() -> None:
    returns, mask = t([1.0, 2.0, 3.0, 9.0]), t([1.0, 1.0, 1.0, 0.0])
    assert losses.explained_variance(returns, returns, mask) == pytest.approx(1.0)
    # R - V = 0, 0, 1: unbiased var (1/9 + 1/9 + 4/9) / 2 = 1/3; Var(R) = 1
    assert losses.explained_variance(t([1.0, 2.0, 2.0, 0.0]), returns, mask) == pytest.approx(2 / 3)
    assert math.isnan(losses.explained_variance(returns, t([2.0, 2.0, 2.0, 0.0]), mask))


@pytest.mark.parametrize(("score", "has_eos", "length", "bonus", "expected"), [
    pytest.param(1.0, True, 64, 4.0, 1.5, id="verdict+bonus: 1 + 4 x 64/512"),
    pytest.param(1.0, False, 512, 4.0, -3.0, id="no-eos-added: 1 - 8 + 4"),
    pytest.param(-1.0, False, 512, 0.0, -9.0, id="no-bonus: -1 - 8"),
    pytest.param(0.25, True, 0, 4.0, 0.25, id="empty answer: no bonus"),
])
def test_shape_adds_the_no_eos_penalty_and_the_length_bonus(score: float, has_eos: bool, length: int,
                                                            bonus: float, expected: float) -> None:
    assert shape(score, has_eos, length, no_eos_penalty=-8.0, length_bonus=bonus, length_norm=512) == \
        pytest.approx(expected)


def test_the_length_bonus_can_outweigh_the_verdict() -> None:
    """The paper's bonus: a wrong, rambling answer that ends outscores a right, short one."""
    assert shape(-1.0, True, 511, -8.0, 4.0, 512) > shape(1.0, True, 5, -8.0, 4.0, 512)


def test_min_max_normalises_within_the_batch() -> None:
    assert min_max([-2.0, -1.0, 0.0]) == pytest.approx([0.0, 0.5, 1.0])
    assert min_max([-0.3, -0.3]) == [0.0, 0.0]


def test_one_answer_end_to_end_by_hand() -> None:
    """Two tokens then EOS, score 1, paper constants: the advantage of each token, by hand."""
    mask = t([1.0, 1.0, 1.0, 0.0])
    logp, ref = t([-1.0, -0.5, -0.1, 0.0]), t([-1.2, -0.5, -0.3, 0.0])  # log ratios 0.2, 0, 0.2
    pen = losses.kl_penalty(logp, ref, 0.1)  # 0.02, 0, 0.02
    score = torch.tensor([shape(1.0, True, 2, -8.0, 4.0, 512)], dtype=torch.float64)  # 1 + 4 x 2/512 = 1.015625
    r = losses.token_rewards(score, pen, mask, 10.0)  # -0.2, 0, (-0.02 + 1.015625) x 10 = 9.95625
    same(r, [[-0.2, 0.0, 9.95625, 0.0]])
    adv, ret = losses.gae(r, t([0.0, 0.0, 0.0, 0.0]), mask, 1.0, 1.0)  # zero-initialised value head
    same(ret, [[9.75625, 9.95625, 9.95625, 0.0]])
    same(adv, ret.tolist())
