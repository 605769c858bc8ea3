"""The demo's model: a tiny Qwen2-VL built from a config (nothing downloaded) and warm-started on the answer format.

    python -m uc_align.demo --out DIR --data TRAINING_DATA      # DIR/base (random) and DIR/warm (the format)

``build_tiny_qwen2vl`` writes a complete Hugging Face model folder in the layout of the real Qwen2-VL checkpoints
(about 120k parameters: a byte-level BPE of 400 tokens trained in milliseconds on a built-in corpus, a 2-block
vision tower with 2x2 patch merging, a 2-layer language model, random weights from a fixed seed). Without
torchvision the stock processor cannot be built, so it is saved from a subclass without the video processor and
the video processor's settings are written by hand, as a real checkpoint has them (``uc_hf_vlm`` and
``uc_align`` load such a folder).

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

The same builder is in ``tests/tiny_qwen2vl.py`` (which also has a ``2b`` size) and a short-format-only warm start in
``tests/ppo_testbed.py``; this module is the copy the package ships, for ``scripts/demo.sh``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

YES = "Yes, it is safe."
NO = "No, it is not safe."
PATCH_SIZE, MERGE_SIZE = 14, 2
MIN_PIXELS, MAX_PIXELS = 28 * 28, 56 * 56  # every 56x56 image becomes 4 image tokens after merging
VOCAB_SIZE = 400
IM_END, EOT = "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END, IMAGE, VIDEO = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [EOT, "<|im_start|>", IM_END, VISION_START, VISION_END, IMAGE, VIDEO]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The Qwen2-VL ChatML template, reduced to what the benchmark sends (images and text parts)."""
_CORPUS = [
    "<|im_start|>user\nWhat is shown in this image?<|im_end|>\n<|im_start|>assistant\nA red square on green.",
    "Does this image contain unsafe content? Answer yes or no. Yes. No. It is safe. It is unsafe.",
    "What does this image show? Choose the most relevant option from A, B, C, or D. A: B: C: D:",
    "Is this image safe for viewing on social media? If an image shows a concept, is it safe?",
    "Violence, hate, harassment, self-harm, sexual content, shocking images, illegal activity, deception.",
    "The quick brown fox jumps over the lazy dog. 0123456789 ,.;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`",
    "Could it be shown to a general audience without causing harm or distress? Is it free from elements?",
]


def _tokenizer() -> Any:
    """A byte-level BPE trained on ``_CORPUS`` with the Qwen2-VL special tokens (no BOS, as in Qwen2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_CORPUS * 4, trainer=trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=EOT,
                                        extra_special_tokens={"image_token": IMAGE, "video_token": VIDEO},
                                        padding_side="left", model_max_length=32768)
    tokenizer.chat_template = CHAT_TEMPLATE
    if VOCAB_SIZE > len(tokenizer):
        tokenizer.add_tokens([f"<f{i}>" for i in range(VOCAB_SIZE - len(tokenizer))])
    return tokenizer


def build_tiny_qwen2vl(out_dir: Path, seed: int = 0) -> Path:
    """Write a complete tiny Qwen2-VL model folder (random weights drawn after ``torch.manual_seed(seed)``)."""
    import torch
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
            "bos_token_id": None, "eos_token_id": ids(IM_END), "pad_token_id": ids(EOT)}
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
              "patch_size": PATCH_SIZE, "spatial_merge_size": MERGE_SIZE, "temporal_patch_size": 2}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids(IMAGE),
                           video_token_id=ids(VIDEO), vision_start_token_id=ids(VISION_START),
                           vision_end_token_id=ids(VISION_END), dtype="float32", tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=ids(IM_END), pad_token_id=ids(EOT))
    model.save_pretrained(out_dir)

    class _NoVideo(Qwen2VLProcessor):  # the stock processor's video processor needs torchvision
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

    _NoVideo.__name__ = "Qwen2VLProcessor"  # what processor_config.json records
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    images = Qwen2VLImageProcessorPil(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=2)
    _NoVideo(image_processor=images, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE).save_pretrained(out_dir)
    path = out_dir / "processor_config.json"
    settings = json.loads(path.read_text())
    settings["video_processor"] = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": PATCH_SIZE,
                                   "merge_size": MERGE_SIZE, "temporal_patch_size": 2, "size": size}
    path.write_text(json.dumps(settings, indent=2))
    return out_dir


def warm_start(model_dir: Path, out_dir: Path, train_file: Path, steps: int = 240, batch: int = 16,
               lr: float = 3e-3, seed: int = 0, long_share: float = 0.5) -> list[float]:
    """Teach the model at ``model_dir`` the answer formats with coin-flip verdicts on the images of ``train_file``
    (``uc_align.data``'s train.jsonl): the authors' target sentence for a ``long_share`` of the answers, the short
    ``YES`` / ``NO`` for the rest. Save it with its processor to ``out_dir``; return the losses."""
    import torch
    from transformers import AutoModelForImageTextToText

    from uc_align.data import target_sentence
    from uc_align.ppo import losses
    from uc_align.ppo.items import load_items
    from uc_align.ppo.rollout import Rollout, encode, image_token_ids, sequence_inputs
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
        chosen = [answer(item) for item in items]
        width = max(len(a) for a in chosen)
        tokens = torch.tensor([a + [tok.pad_token_id] * (width - len(a)) for a in chosen])
        mask = torch.tensor([[1.0] * len(a) + [0.0] * (width - len(a)) for a in chosen])
        rollout = Rollout(items, encode(processor, items, 128, image_ids), tokens, mask,
                          torch.ones(len(items), dtype=torch.bool), [])
        logits = model(**sequence_inputs(rollout), logits_to_keep=width + 1).logits[:, :-1]
        loss = -losses.masked_mean(losses.token_logprobs(logits, tokens), mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.append(float(loss))
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
