"""The tiny Qwen2-VL of the tests (built by ``uc_align.tiny_qwen2vl``, which the demo uses too), LoRA adapters
for tiny models, and the lmms-eval arguments that load them.

:func:`write_lora_adapter` writes a PEFT LoRA folder for any tiny model (as training would) with non-zero ``B``
matrices, so that the adapter changes the model's answers.

    python tests/tiny_qwen2vl.py /tmp/tinyqwen     # prints the --model / --model_args to use
"""

from __future__ import annotations

import sys
from pathlib import Path

from uc_align.tiny_qwen2vl import build_tiny_qwen2vl

__all__ = ["LMMS_MODEL", "build_tiny_qwen2vl", "model_args", "write_lora_adapter"]

LMMS_MODEL = "uc_hf_vlm"
"""The lmms-eval model backend (``--model``) that loads the folder."""


def write_lora_adapter(model_dir: Path, out_dir: Path, seed: int = 1, r: int = 4,
                       target_modules: tuple[str, ...] = ("q_proj", "v_proj", "up_proj", "down_proj")) -> Path:
    """Write a PEFT LoRA adapter for the model at ``model_dir`` to ``out_dir``, as training would.

    ``A`` and ``B`` are drawn at random (``init_lora_weights=False``, after ``torch.manual_seed(seed)``), so
    the adapter changes the model's outputs (a fresh LoRA has ``B = 0`` and changes nothing).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    lora = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules), init_lora_weights=False,
                      base_model_name_or_path=str(model_dir))
    torch.manual_seed(seed)
    get_peft_model(base, lora).save_pretrained(out_dir)
    return Path(out_dir)


def model_args(path: Path, **extra: object) -> str:
    """The ``--model_args`` string for :data:`LMMS_MODEL` on the folder at ``path``."""
    args = {"pretrained": str(Path(path)), "device": "cpu", "dtype": "float32", **extra}
    return ",".join(f"{k}={v}" for k, v in args.items())


if __name__ == "__main__":
    target = build_tiny_qwen2vl(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tinyqwen"))
    print(f"--model {LMMS_MODEL} --model_args {model_args(target)}")
