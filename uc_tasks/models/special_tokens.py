"""The token ids a VLM must never emit (image / video / audio placeholders and the tokenizer's special tokens,
EOS excepted), and its EOS ids: one definition for evaluation (``uc_hf_vlm``) and the RL rollouts."""

from __future__ import annotations

from typing import Any

MULTIMODAL_ID_KEYS = ("image_token_id", "image_token_index", "video_token_id", "video_token_index",
                      "vision_start_token_id", "vision_end_token_id", "audio_token_id", "boi_token_index",
                      "eoi_token_index")
"""Config fields that hold a placeholder or delimiter id of the image / video / audio input."""


def image_token_ids(model: Any, processor: Any) -> set[int]:
    """Ids of the multimodal placeholder and delimiter tokens of this model and processor."""
    tokenizer = processor.tokenizer
    ids = {getattr(model.config, k) for k in MULTIMODAL_ID_KEYS if isinstance(getattr(model.config, k, None), int)}
    for attr in ("image_token", "video_token", "audio_token"):
        token = getattr(processor, attr, None)
        if isinstance(token, str):
            ids.add(tokenizer.convert_tokens_to_ids(token))
    return ids


def eos_token_ids(model: Any, processor: Any) -> list[int]:
    """The generation config's EOS ids and the tokenizer's."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if processor.tokenizer.eos_token_id is not None:
        ids.add(processor.tokenizer.eos_token_id)
    return sorted(ids)


def suppressed_ids(model: Any, processor: Any) -> list[int]:
    """Every special and multimodal placeholder token except EOS, within the output vocabulary: never generated."""
    tokenizer = processor.tokenizer
    ids = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    ids |= image_token_ids(model, processor)
    vocab = model.get_output_embeddings().weight.shape[0]
    eos = set(eos_token_ids(model, processor))
    return sorted(i for i in ids if i is not None and 0 <= i < vocab and i not in eos)
