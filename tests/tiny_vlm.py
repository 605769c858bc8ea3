"""A tiny, randomly initialised LLaVA (CLIP vision tower + Llama) that lmms-eval's ``llava_hf`` loads.

Nothing is downloaded: the configuration is written here, the weights are drawn from a fixed seed,
and a byte-level BPE tokenizer is trained in a few milliseconds on a small built-in corpus. The
folder written by :func:`build_tiny_vlm` is a complete Hugging Face model folder (``config.json``,
``model.safetensors``, ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``,
``processor_config.json``, which in transformers 5 also holds the image processor settings, and
``chat_template.jinja``) that the stock classes load with ``AutoConfig``,
``LlavaForConditionalGeneration`` and ``AutoProcessor``: what ``lmms-eval --model llava_hf
--model_args pretrained=<folder>`` does. The backend imports ``decord`` at module level.

Why LLaVA: ``LlavaProcessor`` takes no ``video_processor``, so it builds and loads without
torchvision (the Qwen2-VL processors do not), and the image processor saved is the PIL one
(``CLIPImageProcessorPil``). The answers are gibberish; the model exists to drive the real
pipeline (chat template, image preprocessing, image-token expansion, generation) on CPU.

``generation_config.json`` suppresses the special tokens (EOS included), so every answer has
exactly ``max_new_tokens`` sampled tokens of text and is never empty after decoding.

Run lmms-eval on it with ``OMP_NUM_THREADS=1``: with torch's default threads on a 2-core machine,
each generate of this model took 0.05-0.6 s instead of 0.03 s (thread contention inside lmms-eval).

    python tests/tiny_vlm.py /tmp/tinyvlm     # prints the --model / --model_args to use

Import it as ``tiny_vlm`` (pytest puts ``tests/`` on ``sys.path``); ``tests.tiny_vlm`` can resolve to
a stray ``tests`` package that some dependency installs into site-packages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from uc_align.tiny_qwen2vl import byte_level_bpe

if TYPE_CHECKING:
    from transformers import LlavaConfig, LlavaProcessor, PreTrainedTokenizerFast

LMMS_MODEL = "llava_hf"
"""The lmms-eval model backend (``--model``) that loads the folder."""

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # CLS dropped by vision_feature_select_strategy="default"
VOCAB_SIZE = 384

BOS, EOS, UNK, PAD, IMAGE = "<s>", "</s>", "<unk>", "<pad>", "<image>"
SPECIAL_TOKENS = [BOS, EOS, UNK, PAD, IMAGE]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% elif message['role'] == 'system' %}SYSTEM: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}</s>{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
"""A Vicuna-like template; each image part becomes one ``<image>`` that the processor expands."""

_CORPUS = [
    "USER: <image>\nWhat is shown in this image? ASSISTANT: The image shows a red square on a green field.",
    "Does this image contain unsafe content? Answer yes or no. Yes. No. It is safe. It is unsafe.",
    "Which of the following options best describes the image? A. B. C. D. E. The answer is (A).",
    "Is this image safe for a general audience to view? Please answer with Yes or No and explain why.",
    "Violence, hate, harassment, self-harm, sexual content, shocking images, illegal activity, deception.",
    "The quick brown fox jumps over the lazy dog. 0123456789 ,.;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`",
    "Consider the concept of the picture and decide whether it is appropriate; give a short reason.",
    "ASSISTANT: I cannot help with that. ASSISTANT: Sure, here is a description of the image.",
]


def _train_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``_CORPUS``, wrapped for transformers (BOS added, as in Llama)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = byte_level_bpe(_CORPUS, SPECIAL_TOKENS, VOCAB_SIZE)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="left",
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _model_config(tokenizer: PreTrainedTokenizerFast, text_hidden: int = 32) -> LlavaConfig:
    """The LLaVA config: a 2-layer CLIP tower (32x32 images, 16 patches) and a 2-layer Llama of width
    ``text_hidden`` (2 heads: vLLM's CPU attention needs a head size of at least 32)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_channels=3,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=2 * text_hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=N_IMAGE_TOKENS,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )


def _processor(tokenizer: PreTrainedTokenizerFast) -> LlavaProcessor:
    """LlavaProcessor over the PIL CLIP image processor; expands each ``<image>`` to 16 tokens."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE,
    )


def build_tiny_vlm(out_dir: Path, seed: int = 0, text_hidden: int = 32, suppress: bool = True) -> Path:
    """Write a complete tiny LLaVA model folder to ``out_dir`` and return it.

    The weights are random but reproducible: drawn after ``torch.manual_seed(seed)``. float32, CPU,
    69,216 parameters; building takes well under a second after the imports. ``suppress=False`` leaves
    ``suppress_tokens`` out of the generation config (a model that is trained to end its answers).
    """
    import torch
    from transformers import GenerationConfig, LlavaForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    config = _model_config(tokenizer, text_hidden)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).to(torch.float32).eval()
    special_ids = sorted(tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=special_ids if suppress else None,
    )
    model.save_pretrained(out_dir)
    _processor(tokenizer).save_pretrained(out_dir)
    return out_dir


def model_args(path: Path) -> str:
    """The ``--model_args`` string for :data:`LMMS_MODEL` on the folder at ``path``.

    ``device_map=cpu`` is required: the backend's default ``device_map=""`` is rejected by
    transformers 5. ``batch_size`` must not appear here (the CLI passes its own ``--batch_size``).
    """
    return f"pretrained={Path(path)},device=cpu,device_map=cpu,dtype=float32"


if __name__ == "__main__":
    target = build_tiny_vlm(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tinyvlm"))
    print(f"--model {LMMS_MODEL} --model_args {model_args(target)}")
