"""Loading a local Hugging Face VLM for ``uc_hf_vlm``: model arguments, model, processor, LoRA adapter.

Every model-level problem (bad argument, missing folder, adapter that does not fit) raises
:class:`ModelArgError`, which ends an lmms-eval run with one line saying what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from loguru import logger as eval_logger

from uc_tasks.errors import one_line

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
NO_VIDEO_HINT = ("torchvision", "video processor", "videoprocessor", "video_processor")


class ModelArgError(SystemExit):
    """A model-level problem. A ``SystemExit``: lmms-eval catches ``Exception`` and would carry on."""

    def __init__(self, message: str) -> None:
        super().__init__(f"uc_hf_vlm: {' '.join(str(message).split())}")


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise ModelArgError(f"{name}={value!r} is not a boolean; use {name}=true or {name}=false")


def as_int(name: str, value: Any, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != float(value) or number < minimum:
        raise ModelArgError(f"{name}={value!r} must be an integer >= {minimum}")
    return number


def as_dtype(value: Any) -> torch.dtype | str:
    if isinstance(value, torch.dtype):
        return value
    key = str(value).strip().lower()
    if key not in DTYPES:
        raise ModelArgError(f"unknown dtype {value!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[key]


def _is_local_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists()


def load_config(pretrained: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    if _is_local_path(pretrained) and not Path(pretrained).expanduser().is_dir():
        raise ModelArgError(f"pretrained={pretrained} is not a folder; pass the model folder (or a cached hub id)")
    try:
        return AutoConfig.from_pretrained(pretrained, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelArgError(
            f"cannot read the config of pretrained={pretrained} ({one_line(e)}); pass a model folder with "
            f"config.json, or a hub id already in the Hugging Face cache"
        ) from None


def model_class(config: Any, trust_remote_code: bool) -> type:
    """``AutoModelForImageTextToText``, or the config's own architecture class where that auto class has no entry."""
    import transformers
    from transformers import AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

    remote = trust_remote_code and "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING or remote:
        return AutoModelForImageTextToText
    names = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        raise ModelArgError(
            f"model_type {config.model_type!r} is not an image-text-to-text model transformers knows "
            f"(architectures={names}); use a VLM checkpoint, or trust_remote_code=true if it ships its own code"
        )
    eval_logger.info(f"uc_hf_vlm: AutoModelForImageTextToText does not map {config.model_type!r}; using {names[0]} "
                     f"from config.architectures")
    return cls


def load_model(pretrained: str, config: Any, dtype: torch.dtype | str, device_map: Any, trust_remote_code: bool,
               attn_implementation: str | None) -> Any:
    cls = model_class(config, trust_remote_code)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = cls.from_pretrained(pretrained, **kwargs)
    except Exception as e:
        raise ModelArgError(f"cannot load the weights of pretrained={pretrained} with {cls.__name__} "
                            f"({one_line(e)}); check the folder and the model args") from None
    return model.eval()


def _without_video(cls: type) -> type:
    """``cls`` minus its video processor: the rest of the processor builds without torchvision."""

    class NoVideo(cls):  # type: ignore[misc, valid-type]
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

    NoVideo.__name__ = NoVideo.__qualname__ = cls.__name__
    return NoVideo


def _processor_class(pretrained: str, config: Any) -> type | None:
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING, processor_class_from_name

    for name in ("processor_config.json", "preprocessor_config.json"):
        path = Path(pretrained) / name
        if path.is_file():
            declared = json.loads(path.read_text()).get("processor_class")
            if declared and processor_class_from_name(declared) is not None:
                return processor_class_from_name(declared)
    return PROCESSOR_MAPPING.get(type(config))


def load_processor(pretrained: str, config: Any, trust_remote_code: bool) -> Any:
    """``AutoProcessor``; if its video processor cannot be built (no torchvision), the same processor without it."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(pretrained, trust_remote_code=trust_remote_code)
    except Exception as e:
        error = e
    cls = None if trust_remote_code else _processor_class(pretrained, config)
    video_problem = any(hint in str(error).lower() for hint in NO_VIDEO_HINT)
    if cls is None or not video_problem or "video_processor" not in cls.get_attributes():
        raise ModelArgError(f"cannot build the processor of pretrained={pretrained} ({one_line(error)}); "
                            f"the folder needs the processor/tokenizer files of the model") from None
    eval_logger.warning(f"uc_hf_vlm: {cls.__name__} could not build its video processor ({one_line(error)}); "
                        f"loading it without one (images and text work; video inputs would fail)")
    try:
        return _without_video(cls).from_pretrained(pretrained)
    except Exception as e:
        raise ModelArgError(f"cannot build the processor of pretrained={pretrained} even without its video "
                            f"processor ({one_line(e)})") from None


def set_pixel_limits(processor: Any, pretrained: str, min_pixels: int | None, max_pixels: int | None) -> None:
    """Rebuild the image processor with ``min_pixels``/``max_pixels``; an error if it does not take them."""
    from transformers import AutoImageProcessor

    if min_pixels is None and max_pixels is None:
        return
    image_processor = getattr(processor, "image_processor", None)
    valid = getattr(image_processor, "valid_kwargs", None)
    accepted = set(getattr(valid, "__required_keys__", ())) | set(getattr(valid, "__optional_keys__", ()))
    if not {"min_pixels", "max_pixels"} <= accepted:
        name = type(image_processor).__name__
        raise ModelArgError(f"the image processor {name} of pretrained={pretrained} takes no min_pixels/max_pixels; "
                            f"remove them from the model args")
    limits = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    processor.image_processor = AutoImageProcessor.from_pretrained(pretrained, **limits)
    eval_logger.info(f"uc_hf_vlm: image processor pixel limits {limits}")


def load_adapter(model: Any, adapter: str, pretrained: str, merge: bool) -> Any:
    """Apply a PEFT LoRA folder to ``model``; an error unless every adapter weight lands in the model."""
    from peft import PeftModel
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        raise ModelArgError(f"adapter folder {adapter} does not exist; pass adapter=<folder written by training>")
    if not (folder / "adapter_config.json").is_file():
        raise ModelArgError(f"adapter folder {adapter} holds no adapter_config.json; pass the folder that PEFT's "
                            f"save_pretrained wrote")
    base_name = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    if base_name and Path(base_name).name != Path(pretrained).name:
        eval_logger.warning(f"uc_hf_vlm: adapter {adapter} was trained on {base_name}, loading it on {pretrained}")
    try:
        peft_model = PeftModel.from_pretrained(model, str(folder))
        # load again to see what did not fit: PeftModel.from_pretrained only warns about missing keys
        result = set_peft_model_state_dict(peft_model, load_peft_weights(str(folder), device="cpu"))
    except Exception as e:
        raise ModelArgError(f"adapter {adapter} does not fit pretrained={pretrained} ({one_line(e)}); pass the "
                            f"adapter trained on this base model") from None
    missing = [k for k in result.missing_keys if "lora_" in k]
    unfit = list(result.unexpected_keys) + missing
    if unfit:
        raise ModelArgError(f"adapter {adapter} does not fit pretrained={pretrained}: {len(unfit)} adapter weight(s) "
                            f"without a place in the model (e.g. {unfit[0]}); pass the adapter trained on this model")
    eval_logger.info(f"uc_hf_vlm: adapter {adapter} loaded" + (" and merged" if merge else ""))
    return peft_model.merge_and_unload() if merge else peft_model
