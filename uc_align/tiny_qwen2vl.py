"""A tiny, randomly initialised Qwen2-VL, and LoRA adapters for tiny models, built here from configs.

Nothing is downloaded: the configuration is written here, the weights are drawn from a fixed seed,
and a byte-level BPE tokenizer is trained in milliseconds on a small built-in corpus. The folder
written by :func:`build_tiny_qwen2vl` is a complete Hugging Face model folder (``config.json``,
``model.safetensors``, ``generation_config.json``, tokenizer files, ``processor_config.json``
with the PIL image processor, ``chat_template.jinja``) in the layout of the real Qwen2-VL
checkpoints: a Qwen2-style ChatML template, ``<|vision_start|><|image_pad|><|vision_end|>`` per image,
multimodal RoPE, a 2-block vision tower with 2x2 patch merging.

Without torchvision the stock ``Qwen2VLProcessor`` cannot be built (its ``video_processor`` needs
torchvision), so this builder saves the processor from a subclass that has no video processor and
then writes the video processor's settings into ``processor_config.json`` by hand, as a real
checkpoint has them. ``AutoProcessor.from_pretrained`` on this folder then fails without
torchvision (``Qwen2VLVideoProcessor requires the Torchvision library``) as on a real Qwen2-VL
checkpoint, which is what the ``uc_hf_vlm`` backend must cope with.

Unlike the tests' ``tiny_vlm``, the generation config here suppresses nothing: the backend itself must keep the
model from emitting image tokens. EOS may be sampled, so answers can be shorter than
``max_new_tokens``.

The demo (``python -m uc_align.demo``) and the tests (``tests/tiny_qwen2vl.py``) build their models here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast, ProcessorMixin, Qwen2VLConfig

PATCH_SIZE = 14
MERGE_SIZE = 2
MAX_PIXELS = 56 * 56  # every image becomes 4x4 patches -> 4 image tokens after 2x2 merging
MIN_PIXELS = 28 * 28
VOCAB_SIZE = 400

IM_START, IM_END, EOT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END, IMAGE, VIDEO = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [EOT, IM_START, IM_END, VISION_START, VISION_END, IMAGE, VIDEO]

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


def byte_level_bpe(corpus: list[str], special_tokens: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE trained on ``corpus`` in milliseconds (shared by the tiny models of the demo and the tests)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    return tok


def _train_tokenizer(vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``_CORPUS`` with the Qwen2-VL special tokens (no BOS, as in Qwen2).

    A ``vocab_size`` above what the corpus yields is filled with plain added tokens ``<fN>``, so that every
    id a large random model emits decodes to text."""
    from transformers import PreTrainedTokenizerFast

    tok = byte_level_bpe(_CORPUS, SPECIAL_TOKENS, VOCAB_SIZE)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=EOT,
        extra_special_tokens={"image_token": IMAGE, "video_token": VIDEO},
        padding_side="left",
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if vocab_size > len(tokenizer):
        tokenizer.add_tokens([f"<f{i}>" for i in range(vocab_size - len(tokenizer))])
    return tokenizer


SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {  # about 120k parameters
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                               "mrope_section": [1, 1, 2]}},
        "vision": {"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2},
        "model": {"tie_word_embeddings": False},
        "pixels": {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS},
    },
    "2b": {  # the shapes of Qwen2-VL-2B-Instruct (about 2.2B parameters), for GPU benchmarks
        "text": {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                 "num_attention_heads": 12, "num_key_value_heads": 2, "rope_parameters": {
                     "rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}},
        "vision": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4},
        "model": {"tie_word_embeddings": True},
        "pixels": {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280},  # the real processor's defaults
    },
}
"""Model shapes by ``size``: ``tiny`` for tests on CPU, ``2b`` for throughput on a GPU."""


def _model_config(tokenizer: PreTrainedTokenizerFast, max_positions: int, size: str = "tiny") -> Qwen2VLConfig:
    """The Qwen2-VL config of ``size`` (see :data:`SIZES`) over ``tokenizer``."""
    from transformers import Qwen2VLConfig

    shapes = SIZES[size]
    ids = tokenizer.convert_tokens_to_ids
    text = {
        "vocab_size": len(tokenizer),
        **shapes["text"],
        "max_position_embeddings": max_positions,
        "bos_token_id": None,
        "eos_token_id": ids(IM_END),
        "pad_token_id": ids(EOT),
    }
    vision = {**shapes["vision"], "patch_size": PATCH_SIZE, "spatial_merge_size": MERGE_SIZE, "temporal_patch_size": 2}
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids(IMAGE),
        video_token_id=ids(VIDEO),
        vision_start_token_id=ids(VISION_START),
        vision_end_token_id=ids(VISION_END),
        dtype="float32",
        **shapes["model"],
    )


def _processor(tokenizer: PreTrainedTokenizerFast, size: str = "tiny") -> ProcessorMixin:
    """Qwen2VLProcessor over the PIL image processor, without the (torchvision-only) video processor."""
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    class _NoVideo(Qwen2VLProcessor):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

    _NoVideo.__name__ = "Qwen2VLProcessor"  # what processor_config.json records
    pixels = SIZES[size]["pixels"]
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": pixels["min_pixels"], "longest_edge": pixels["max_pixels"]},
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=2,
    )
    return _NoVideo(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_tiny_qwen2vl(out_dir: Path, seed: int = 0, max_positions: int = 32768, size: str = "tiny",
                       dtype: str = "float32", device: str = "cpu") -> Path:
    """Write a complete Qwen2-VL model folder of ``size`` (:data:`SIZES`) to ``out_dir`` and return it.

    The weights are random but reproducible (drawn after ``torch.manual_seed(seed)`` on ``device``), saved
    in ``dtype``. ``max_positions`` is the text model's ``max_position_embeddings`` (the context length).
    ``size="2b"`` is meant for a GPU (``device="cuda"``, ``dtype="bfloat16"``): about 4.4 GB on disk.
    """
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(SIZES[size]["text"].get("vocab_size", VOCAB_SIZE))
    config = _model_config(tokenizer, max_positions, size)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration(config)
    model = model.to(getattr(torch, dtype)).eval()
    model.config.dtype = dtype
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(EOT),
    )
    model.save_pretrained(out_dir)
    _processor(tokenizer, size).save_pretrained(out_dir)
    _add_video_processor_settings(out_dir / "processor_config.json", SIZES[size]["pixels"])
    return out_dir


def _add_video_processor_settings(path: Path, pixels: dict[str, int]) -> None:
    """Record the video processor a real checkpoint has (building it needs torchvision, so write its settings)."""
    settings = json.loads(path.read_text())
    settings["video_processor"] = {
        "video_processor_type": "Qwen2VLVideoProcessor",
        "patch_size": PATCH_SIZE,
        "merge_size": MERGE_SIZE,
        "temporal_patch_size": 2,
        "size": {"shortest_edge": pixels["min_pixels"], "longest_edge": pixels["max_pixels"]},
    }
    path.write_text(json.dumps(settings, indent=2))
