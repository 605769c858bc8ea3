"""The settings of every ``uc_align`` command: one dataclass per command, help text on every field, values from
the defaults, then ``--config file.yaml``, then flags (``uc_tasks.config.parse_config``). Cross-field checks
run in ``__post_init__`` and say the value, the rule and the fix.

The training defaults are the paper's (Qu et al. 2025, the authors' code): LoRA r 128, alpha 256, dropout 0.05
on q/k/v/o/gate/up/down of the language model (vision tower and projector frozen), 4 epochs, batch 32,
cosine schedule with 5 warm-up steps, seed 42; SFT lr 3e-5 with answer-only loss and gradient clipping at 0.3;
DPO lr 2e-6, beta 0.1, sigmoid loss. The paper's SFT base was 4-bit (QLoRA); here ``load_in_4bit`` is off by
default, since it needs CUDA and bitsandbytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from uc_tasks.config import help_field

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")
DTYPES = ("auto", "float32", "bfloat16", "float16")
REPORT_TO = ("auto", "none", "tensorboard", "wandb")
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "aot", "aot_unpaired",
              "apo_zero", "apo_down", "discopop", "sigmoid_norm")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class DataConfig:
    """Settings of ``python -m uc_align.data``."""

    out: str = help_field("", "folder to write: dataset/ (HF datasets, images included), train.jsonl, test.jsonl, "
                          "images/ and manifest.json")
    data: str | None = help_field(None, "the UnsafeConcepts images: a folder (metadata.jsonl + images), a .parquet "
                                  "file or 'hf'; default: UNSAFECONCEPTS_DATA (unset: the gated hub dataset)")
    safe_data: str | None = help_field(None, "the safe control images: a folder (metadata.jsonl with image_filename, "
                                       "concept), a .parquet file or 'hf'; default: UNSAFECONCEPTS_SAFE_DATA (unset: "
                                       "yiting/imagenet_1k_unique_class)")
    seed: int = help_field(2024, "seed of the 80/20 splits (the authors': 2024)")
    prompt_seed: int = help_field(2024, "seed of the one-of-five prompt drawn for each training image")

    def __post_init__(self) -> None:
        _check(bool(self.out), "out is required: pass --out DIR, the folder to write the training data to")


@dataclass
class TrainConfig:
    """What SFT and DPO share (``SFTTrainConfig`` and ``DPOTrainConfig`` add their own)."""

    model: str = help_field("", "base model: a local folder or a hub id already in the cache (any transformers "
                            "image-text-to-text VLM, e.g. llava-hf/llava-1.5-7b-hf)")
    data: str = help_field("", "training data: the folder `python -m uc_align.data --out DIR` wrote")
    out: str = help_field("", "checkpoint folder to write: the adapter, the processor, uc_align.json (resolved "
                          "config, data manifest hash), training_log.jsonl; resumable checkpoints in checkpoints/")
    lora_r: int = help_field(128, "LoRA rank (paper: 128)")
    lora_alpha: int = help_field(256, "LoRA alpha (paper: 256)")
    lora_dropout: float = help_field(0.05, "LoRA dropout (paper: 0.05)")
    lora_targets: list[str] = help_field(LORA_TARGETS, "names of the language model's linear layers that get LoRA "
                                         "(matched inside the language model only: the vision tower and the "
                                         "projector stay frozen)")
    modules_to_save: list[str] = help_field([], "modules trained in full and saved with the adapter, e.g. lm_head "
                                            "(none in the paper)")
    learning_rate: float = help_field(3e-5, "peak learning rate")
    epochs: float = help_field(4.0, "passes over the training data (paper: 4)")
    max_steps: int = help_field(-1, "stop after this many optimiser steps (-1: the epochs decide)")
    batch_size: int = help_field(32, "examples per optimiser step, over all processes and accumulation steps "
                                 "(paper: 32)")
    gradient_accumulation_steps: int = help_field(1, "forward/backward passes per optimiser step")
    lr_scheduler: str = help_field("cosine", f"learning-rate schedule: {', '.join(SCHEDULERS)}")
    warmup_steps: int = help_field(5, "linear warm-up steps (paper: 5)")
    weight_decay: float = help_field(0.0, "AdamW weight decay")
    max_grad_norm: float = help_field(1.0, "gradient clipping norm (0: none)")
    seed: int = help_field(42, "seed of the data order, LoRA init and dropout (paper: 42)")
    dtype: str = help_field("auto", f"weights and compute dtype: {', '.join(DTYPES)} (auto: bfloat16 on CUDA, float32 "
                            "on CPU)")
    load_in_4bit: bool = help_field(False, "4-bit NF4 base with double quantisation, bf16 compute (QLoRA, the "
                                    "paper's SFT); needs CUDA and bitsandbytes")
    gradient_checkpointing: bool = help_field(False, "recompute activations in the backward pass (less memory)")
    max_length: int | None = help_field(None, "truncate prompt + answer to this many tokens (default: none; a cut "
                                        "through image tokens breaks a VLM)")
    logging_steps: int = help_field(1, "log (progress bar, training_log.jsonl, TensorBoard) every N steps")
    save_steps: int = help_field(50, "write a resumable checkpoint every N steps (paper: 50)")
    save_total_limit: int = help_field(2, "resumable checkpoints kept (the newest)")
    resume: bool = help_field(False, "continue the run in `out` from its newest checkpoint (a killed run)")
    report_to: str = help_field("auto", f"metrics sinks besides training_log.jsonl: {', '.join(REPORT_TO)} (auto: "
                                "tensorboard when installed)")
    trust_remote_code: bool = help_field(False, "let the model folder run its own code")
    attn_implementation: str | None = help_field(None, "attention kernel, e.g. sdpa, eager, flash_attention_2")

    def __post_init__(self) -> None:
        _check(bool(self.model), "model is required: pass --model <model folder or cached hub id>")
        _check(bool(self.data), "data is required: pass --data DIR, written by `python -m uc_align.data --out DIR`")
        _check(bool(self.out), "out is required: pass --out DIR, the checkpoint folder to write")
        _check(self.lora_r >= 1, f"lora_r={self.lora_r}: the LoRA rank must be at least 1; pass e.g. --lora_r 128 "
               "(paper)")
        _check(self.lora_alpha > 0, f"lora_alpha={self.lora_alpha}: must be positive; pass e.g. --lora_alpha 256 "
               "(paper: 2 x lora_r)")
        _check(0 <= self.lora_dropout < 1, f"lora_dropout={self.lora_dropout}: a probability in [0, 1); pass e.g. "
               "--lora_dropout 0.05 (paper)")
        _check(bool(self.lora_targets), "lora_targets is empty: name the linear layers that get LoRA, e.g. "
               f"--lora_targets {' '.join(LORA_TARGETS)}")
        _check(self.learning_rate > 0, f"learning_rate={self.learning_rate}: must be positive")
        _check(self.epochs > 0 or self.max_steps > 0, f"epochs={self.epochs} and max_steps={self.max_steps}: one of "
               "them must be positive; pass --epochs 4 (paper) or --max_steps N")
        _check(self.batch_size >= 1, f"batch_size={self.batch_size}: must be at least 1; pass e.g. --batch_size 32")
        _check(self.gradient_accumulation_steps >= 1,
               f"gradient_accumulation_steps={self.gradient_accumulation_steps}: must be at least 1")
        _check(self.batch_size % self.gradient_accumulation_steps == 0,
               f"batch_size={self.batch_size} is not a multiple of gradient_accumulation_steps="
               f"{self.gradient_accumulation_steps}: each pass takes batch_size / gradient_accumulation_steps "
               "examples; choose values that divide")
        _check(self.lr_scheduler in SCHEDULERS, f"lr_scheduler={self.lr_scheduler!r} is not one of "
               f"{', '.join(SCHEDULERS)}; pass e.g. --lr_scheduler cosine (paper)")
        _check(self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps}: must be 0 or more")
        _check(self.weight_decay >= 0, f"weight_decay={self.weight_decay}: must be 0 or more")
        _check(self.max_grad_norm >= 0, f"max_grad_norm={self.max_grad_norm}: must be 0 (no clipping) or more")
        _check(self.dtype in DTYPES, f"dtype={self.dtype!r} is not one of {', '.join(DTYPES)}")
        _check(not (self.load_in_4bit and self.dtype == "float32"), "load_in_4bit with dtype=float32: 4-bit "
               "training computes in bfloat16; pass --dtype auto or --dtype bfloat16")
        _check(self.max_length is None or self.max_length >= 16, f"max_length={self.max_length}: too short for a "
               "prompt with an image; leave it unset (no truncation) or pass 512 or more")
        for name in ("logging_steps", "save_steps", "save_total_limit"):
            _check(getattr(self, name) >= 1, f"{name}={getattr(self, name)}: must be at least 1")
        _check(self.report_to in REPORT_TO, f"report_to={self.report_to!r} is not one of {', '.join(REPORT_TO)}")


@dataclass
class SFTTrainConfig(TrainConfig):
    """Settings of ``python -m uc_align.sft``: supervised fine-tuning on the fixed target sentences, the loss on
    the answer tokens only."""

    learning_rate: float = help_field(3e-5, "peak learning rate (paper: 3e-5)")
    max_grad_norm: float = help_field(0.3, "gradient clipping norm (paper: 0.3; 0: none)")


@dataclass
class DPOTrainConfig(TrainConfig):
    """Settings of ``python -m uc_align.dpo``: chosen = the correct-label sentence, rejected = the opposite one;
    the reference is the base model (the adapter disabled)."""

    learning_rate: float = help_field(2e-6, "peak learning rate (paper: 2e-6)")
    beta: float = help_field(0.1, "DPO beta: strength of the pull towards the reference (paper: 0.1)")
    loss_type: str = help_field("sigmoid", f"DPO loss (paper: sigmoid on summed log-probs): {', '.join(DPO_LOSSES)}")
    sft_weight: float = help_field(0.0, "weight of an added NLL loss on the chosen answers (RPO, Pang et al. 2024; "
                                   "0: pure DPO, the paper's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.beta > 0, f"beta={self.beta}: must be positive; pass e.g. --beta 0.1 (paper)")
        _check(self.sft_weight >= 0, f"sft_weight={self.sft_weight}: must be 0 (pure DPO) or more")
        _check(self.loss_type in DPO_LOSSES, f"loss_type={self.loss_type!r} is not one of {', '.join(DPO_LOSSES)}")
