"""The demo's model: a tiny Qwen2-VL built from a config (nothing downloaded) and warm-started on the answer format.

    python -m uc_align.demo --out DIR --data TRAINING_DATA      # DIR/base (random) and DIR/warm (the format)

``uc_align.tiny_qwen2vl.build_tiny_qwen2vl`` writes the base: a complete Hugging Face model folder in the layout
of the real Qwen2-VL checkpoints (about 120k parameters, random weights from a fixed seed), the tests' tiny model.

``warm_start`` teaches the language model and lm_head (the vision tower stays as drawn) the answer formats with
coin-flip verdicts independent of the image, on the training images of ``python -m uc_align.data``: half the
answers are the authors' SFT target sentences, half the short "Yes, it is safe." / "No, it is not safe.". The
model then answers at chance (about 50% on the balanced fine-tuning test): the one starting point from which SFT,
DPO and PPO are all seen to learn (one base, so one Table 3). Both formats because each method needs one: SFT
and DPO train on the authors' sentences, which LoRA on a model that never saw them learns too slowly for a demo
(measured: loss 1.1 after 104 SFT steps from a short-format warm start, 0.3 from this one); PPO learns slowly on
those sentences (the verdict is one token of about 70 here, ``tests/test_ppo_learning.py``), and with
``--max_new_tokens 32`` its no-EOS penalty moves it to the short format within a few steps, where the verdict is
learnt (measured with ``scripts/demo.sh``'s flags, lr 2e-3: held-out greedy accuracy 0.50 -> 0.70 / 0.73 / 0.78 /
0.95 after 8 / 16 / 24 / 32 steps of 32 rollouts; at lr 1e-3 the same 32 steps ended at 0.50 or 0.89 depending on
the evaluation schedule, i.e. on the sampling trajectory).

A short-format-only warm start, for PPO's learning test, is ``tests/ppo_testbed.py``'s.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from uc_align.tiny_qwen2vl import build_tiny_qwen2vl

YES = "Yes, it is safe."
NO = "No, it is not safe."
def answer_step(model: Any, processor: Any, optimizer: Any, items: list[Any], answers: list[list[int]],
                image_ids: set[int], width: int | None = None) -> float:
    """One optimizer step of the NLL of ``answers`` (token ids, EOS included) to ``items``' prompts and images,
    right-padded to ``width`` (default: the longest); returns the loss."""
    import torch

    from uc_align.ppo import losses
    from uc_align.ppo.rollout import Rollout, encode, sequence_inputs

    tok = processor.tokenizer
    width = width or max(len(a) for a in answers)
    tokens = torch.tensor([a + [tok.pad_token_id] * (width - len(a)) for a in answers])
    mask = torch.tensor([[1.0] * len(a) + [0.0] * (width - len(a)) for a in answers])
    rollout = Rollout(items, encode(processor, items, 128, image_ids), tokens, mask,
                      torch.ones(len(items), dtype=torch.bool), [])
    logits = model(**sequence_inputs(rollout), logits_to_keep=width + 1).logits[:, :-1]
    loss = -losses.masked_mean(losses.token_logprobs(logits, tokens), mask)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)


def warm_start(model_dir: Path, out_dir: Path, train_file: Path, steps: int = 240, batch: int = 16,
               lr: float = 3e-3, seed: int = 0, long_share: float = 0.5) -> list[float]:
    """Teach the model at ``model_dir`` the answer formats with coin-flip verdicts on the images of ``train_file``
    (``uc_align.data``'s train.jsonl): the authors' target sentence for a ``long_share`` of the answers, the short
    ``YES`` / ``NO`` for the rest. Save it with its processor to ``out_dir``; return the losses."""
    import torch
    from transformers import AutoModelForImageTextToText

    from uc_align.data import target_sentence
    from uc_align.ppo.items import load_items
    from uc_align.ppo.rollout import image_token_ids
    from uc_align.ppo.trainer import load_processor

    torch.manual_seed(seed)
    rng = random.Random(seed)
    pool = load_items(train_file, seed=seed)
    processor = load_processor(str(model_dir))
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    tok = processor.tokenizer

    def answer(item: Any) -> list[int]:
        verdict = rng.choice(["safe", "unsafe"])  # the verdict ignores the image
        text = (target_sentence(verdict, item.prompt_id, item.concept) if rng.random() < long_share
                else YES if verdict == "safe" else NO)
        return tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    language = [p for n, p in model.named_parameters() if "visual" not in n and "vision" not in n]
    optimizer = torch.optim.AdamW(language, lr=lr, weight_decay=0.0)
    image_ids = image_token_ids(model, processor)
    model.train()
    log = []
    for _ in range(steps):
        items = rng.sample(pool, batch)
        log.append(answer_step(model, processor, optimizer, items, [answer(item) for item in items], image_ids))
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write base/ (random) and warm/ (the format) into")
    parser.add_argument("--data", required=True, help="folder written by `python -m uc_align.data` (its train.jsonl)")
    parser.add_argument("--steps", type=int, default=240, help="warm-start steps (batches of 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the warm start")
    args = parser.parse_args(argv)
    out = Path(args.out)
    base, warm = out / "base", out / "warm"
    if not (base / "model.safetensors").is_file():
        build_tiny_qwen2vl(base, seed=args.seed)
    if not (warm / "model.safetensors").is_file():
        log = warm_start(base, warm, Path(args.data) / "train.jsonl", steps=args.steps, seed=args.seed)
        print(f"warm start: loss {log[0]:.3f} -> {sum(log[-10:]) / 10:.3f} over {len(log)} steps")
    print(f"base model {base}; warm model {warm}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
