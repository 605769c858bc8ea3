"""Rollouts and the three roles of one base (policy, value, reference) on a tiny Qwen2-VL built from a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ppo_testbed
import pytest
import torch

from uc_align.ppo import losses
from uc_align.ppo import model as ppo_model
from uc_align.ppo import rollout as ro
from uc_align.ppo.config import PPOConfig
from uc_align.ppo.trainer import load_processor


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_qwen2vl import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("ppo_tiny") / "model")


@pytest.fixture(scope="session")
def processor(tiny_model: Path) -> Any:
    return load_processor(str(tiny_model))


def config(model: Path, **changes: Any) -> PPOConfig:
    return PPOConfig(model=str(model), lora_r=4, lora_alpha=8, modules_to_save=["lm_head"], max_new_tokens=12,
                     **changes)


@pytest.fixture(scope="session")
def models(tiny_model: Path) -> ppo_model.Models:
    torch.manual_seed(0)
    built = ppo_model.build(config(tiny_model))
    with torch.no_grad():  # a trained-looking policy adapter: B != 0, lm_head copy moved
        for name, p in built.peft.named_parameters():
            if ".policy." in name and ("lora_B" in name or "modules_to_save" in name):
                p.add_(0.3 * torch.randn_like(p))
    return built


ITEMS = ppo_testbed.make_items(6, seed=3)


@pytest.fixture(scope="session")
def rollout(models: ppo_model.Models, processor: Any) -> ro.Rollout:
    torch.manual_seed(1)
    with models.generation_mode():
        return ro.sample(models.peft, processor, ITEMS, max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0,
                         max_prompt_tokens=128)


def test_prompts_are_left_padded_and_vary_in_length(rollout: ro.Rollout) -> None:
    mask = rollout.prompt["attention_mask"]
    assert len(set(mask.sum(dim=1).tolist())) > 1
    assert bool((mask[:, -1] == 1).all()) and bool((mask[:, 0] == 0).any())


def test_answers_are_masked_after_the_first_eos_and_never_hold_special_tokens(
        models: ppo_model.Models, processor: Any, rollout: ro.Rollout) -> None:
    eos = ro.eos_token_ids(models.peft, processor)
    suppressed = set(ro.suppressed_ids(models.peft, processor))
    assert ro.image_token_ids(models.peft, processor) <= suppressed and not suppressed & set(eos)
    mask, has_eos = losses.completion_mask(rollout.tokens, eos)
    assert torch.equal(mask, rollout.mask) and torch.equal(has_eos, rollout.has_eos)
    real = rollout.tokens[rollout.mask.bool()].tolist()
    assert not set(real) & suppressed
    pad = processor.tokenizer.pad_token_id
    assert bool((rollout.tokens[~rollout.mask.bool()] == pad).all())
    assert rollout.lengths == [int(n) - int(e) for n, e in zip(rollout.mask.sum(1), rollout.has_eos, strict=True)]


def test_policy_log_probs_from_the_forward_equal_the_sampling_distribution(models: ppo_model.Models,
                                                                           processor: Any) -> None:
    """The forward over prompt + answer (left padded, answer right padded) scores each sampled token as
    generate did: the loss and the rollout see the same policy."""
    prompt = ro.encode(processor, ITEMS, 128, ro.image_token_ids(models.peft, processor))
    eos = ro.eos_token_ids(models.peft, processor)
    with models.generation_mode():
        out = models.peft.generate(**prompt, do_sample=True, top_k=0, max_new_tokens=8, eos_token_id=eos,
                                   suppress_tokens=ro.suppressed_ids(models.peft, processor),
                                   pad_token_id=processor.tokenizer.pad_token_id, output_logits=True,
                                   return_dict_in_generate=True)
    tokens = out.sequences[:, prompt["input_ids"].shape[1]:]
    mask, has_eos = losses.completion_mask(tokens, eos)
    rollout = ro.Rollout(ITEMS, prompt, torch.where(mask.bool(), tokens, 0), mask, has_eos, [])
    with torch.no_grad():
        forward = ppo_model.policy_forward(models, rollout).logprobs
    sampled = losses.token_logprobs(torch.stack(out.logits, dim=1), rollout.tokens)
    assert float(((forward - sampled).abs() * mask).max()) < 1e-4


def test_reference_is_the_base_model_with_adapters_disabled(models: ppo_model.Models, tiny_model: Path,
                                                            rollout: ro.Rollout) -> None:
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    width = rollout.tokens.shape[1]
    with torch.no_grad():
        ref = ppo_model.policy_forward(models, rollout, reference=True).logprobs
        policy = ppo_model.policy_forward(models, rollout).logprobs
        logits = base(**ro.sequence_inputs(rollout), logits_to_keep=width + 1).logits[:, :-1]
    expected = losses.token_logprobs(logits, rollout.tokens)
    assert float(((ref - expected).abs() * rollout.mask).max()) < 1e-5
    assert float(((policy - expected).abs() * rollout.mask).max()) > 1e-2  # the adapter does change it


def test_value_starts_at_zero_and_reads_the_hidden_state_before_each_token(models: ppo_model.Models,
                                                                           rollout: ro.Rollout) -> None:
    with torch.no_grad():
        assert float(ppo_model.value_forward(models, rollout).abs().max()) == 0.0
        head = models.value_head
        saved = {k: v.clone() for k, v in head.state_dict().items()}
        head.weight.normal_()
        head.bias.fill_(0.5)
        values = ppo_model.value_forward(models, rollout)
        models.use(ppo_model.VALUE)
        hidden = models.peft(**ro.sequence_inputs(rollout), output_hidden_states=True).hidden_states[-1]
        models.use(ppo_model.POLICY)
        p = rollout.prompt_width
        for t in (0, 3):  # the value of answer token t reads position p + t - 1
            assert torch.allclose(values[:, t], head(hidden[:, p + t - 1]).squeeze(-1), atol=1e-5)
        head.load_state_dict(saved)


def test_both_adapters_and_the_head_train_and_nothing_else(models: ppo_model.Models) -> None:
    trainable = {id(p) for p in models.trainable}
    names = [n for n, p in models.peft.named_parameters() if id(p) in trainable]
    assert any(".policy." in n for n in names) and any(".value." in n for n in names)
    assert any("lm_head.modules_to_save.policy" in n for n in names)
    assert not [n for n in names if "visual" in n or "merger" in n]
    models.use(ppo_model.VALUE)
    assert all(p.requires_grad for p in models.trainable)  # PEFT's set_adapter would freeze the policy
    models.use(ppo_model.POLICY)
    frozen = [p for n, p in models.peft.named_parameters() if id(p) not in trainable]
    assert not any(p.requires_grad for p in frozen)


def test_a_minibatch_forward_equals_its_rows_of_the_full_batch(models: ppo_model.Models,
                                                               rollout: ro.Rollout) -> None:
    rows = torch.tensor([4, 1])
    with torch.no_grad():
        full = ppo_model.policy_forward(models, rollout).logprobs
        part = ppo_model.policy_forward(models, rollout, rows).logprobs
    assert torch.allclose(full[rows] * rollout.mask[rows], part * rollout.mask[rows], atol=1e-5)


def test_generation_turns_gradient_checkpointing_off_and_back_on(tiny_model: Path, processor: Any) -> None:
    built = ppo_model.build(config(tiny_model, gradient_checkpointing=True))
    assert ppo_model.is_checkpointing(built.peft)
    with built.generation_mode():
        assert not ppo_model.is_checkpointing(built.peft) and not built.peft.training
        ro.sample(built.peft, processor, ITEMS[:2], max_new_tokens=3, temperature=1.0, top_p=1.0, top_k=0,
                  max_prompt_tokens=128)
    assert ppo_model.is_checkpointing(built.peft)


def test_a_prompt_over_the_limit_stops_instead_of_being_cut(models: ppo_model.Models, processor: Any) -> None:
    with pytest.raises(ValueError, match="more than max_prompt_tokens=5; raise max_prompt_tokens"):
        ro.encode(processor, ITEMS, 5, ro.image_token_ids(models.peft, processor))


@pytest.mark.parametrize("greedy", [True, False])
def test_a_static_cache_samples_the_same_answers(models: ppo_model.Models, processor: Any, greedy: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``--rollout_cache static`` (a fixed-size KV cache; compiled decoding on CUDA) changes speed, not answers."""
    answers, asked = {}, []
    generate = models.peft.generate

    def recording(**kwargs: Any) -> Any:
        asked.append(kwargs.get("cache_implementation"))
        return generate(**kwargs)

    monkeypatch.setattr(models.peft, "generate", recording)
    for cache in ("dynamic", "static"):
        torch.manual_seed(5)
        with models.generation_mode():
            answers[cache] = ro.sample(models.peft, processor, ITEMS, max_new_tokens=12, temperature=1.0, top_p=1.0,
                                       top_k=0, max_prompt_tokens=128, greedy=greedy, cache=cache).tokens
    assert asked == [None, "static"]
    assert torch.equal(answers["dynamic"], answers["static"])
