"""One set of base weights, three roles: policy, value and reference.

- **policy**: the VLM with the LoRA adapter ``policy`` (plus ``modules_to_save``, e.g. ``lm_head``, if asked).
- **value**: the same base with a second LoRA adapter ``value`` and a zero-initialised ``Linear(hidden, 1)``
  head on the last hidden state (after the final norm). The value of answer token t reads the hidden state
  at t-1, the position whose logits sample token t. It starts from the base, not from a classifier.
- **reference**: the same base with every adapter disabled (``disable_adapter``): the base model's exact
  numbers, with no second copy of the weights (the authors' third 4-bit copy with a fresh LoRA is the same).

Only the language model's linear layers get LoRA (``lora_target_modules`` under ``language_model``): never
the vision tower or the projector, which stay frozen. Every dropout module is set to p=0 once loaded, so
that log-probabilities in the loss equal those of the rollout before an update (TRL's PPO trainer did
the same); ``lora_dropout`` is still written into the adapter configs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from uc_align.ppo import losses
from uc_align.ppo.config import PPOConfig
from uc_align.ppo.rollout import Rollout, sequence_inputs

POLICY, VALUE = "policy", "value"
VALUE_HEAD_FILE = "value_head.pt"


def set_checkpointing(model: Any, on: bool) -> None:
    """Activation checkpointing on (non-reentrant: LoRA needs no input gradients then) or off."""
    base = model.get_base_model()
    if hasattr(base, "activation_checkpointing_enable"):  # the names of recent transformers
        if on:
            base.activation_checkpointing_enable({"use_reentrant": False})
        else:
            base.activation_checkpointing_disable()
    elif on:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_disable()


def is_checkpointing(model: Any) -> bool:
    base = model.get_base_model()
    if hasattr(type(base), "is_activation_checkpointing"):
        return bool(base.is_activation_checkpointing)
    return bool(base.is_gradient_checkpointing)


def torch_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, name)


def load_base(config: PPOConfig) -> Any:
    """The base VLM (4-bit NF4 when ``load_in_4bit``), on CUDA when there is one."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": torch_dtype(config.dtype)}
    if config.load_in_4bit:
        if not torch.cuda.is_available():
            raise RuntimeError("load_in_4bit=true needs CUDA, and this machine has none; set load_in_4bit false")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise RuntimeError("load_in_4bit=true needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForImageTextToText.from_pretrained(config.model, **kwargs)
    if not config.load_in_4bit and torch.cuda.is_available():
        model = model.to("cuda")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def lora_config(config: PPOConfig, modules_to_save: list[str] | None) -> Any:
    from peft import LoraConfig

    names = "|".join(config.lora_target_modules)
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=rf".*language_model.*\.({names})", modules_to_save=modules_to_save or None,
                      task_type=None)


@dataclass
class Models:
    """The PEFT model holding both adapters, the value head, and the parameters the optimizer trains."""

    peft: Any
    value_head: nn.Linear
    gradient_checkpointing: bool

    trainable: list[nn.Parameter] = field(default_factory=list)
    """Policy LoRA (+ modules_to_save), value LoRA, value head, in a fixed order (the optimizer's state)."""

    def __post_init__(self) -> None:
        adapters = [p for n, p in sorted(self.peft.named_parameters())
                    if ("lora_" in n or "modules_to_save" in n) and (f".{POLICY}." in n or f".{VALUE}." in n)]
        self.trainable = adapters + list(self.value_head.parameters())

    def use(self, adapter: str) -> None:
        """Make ``adapter`` active. PEFT's set_adapter also freezes the other one; undo that."""
        self.peft.set_adapter(adapter)
        for p in self.trainable:
            p.requires_grad_(True)

    @contextlib.contextmanager
    def generation_mode(self) -> Iterator[None]:
        """Eval mode, KV cache on, gradient checkpointing off, policy adapter active."""
        self.use(POLICY)
        self.peft.eval()
        if self.gradient_checkpointing:
            set_checkpointing(self.peft, False)
        try:
            yield
        finally:
            if self.gradient_checkpointing:
                self.enable_checkpointing()

    def enable_checkpointing(self) -> None:
        set_checkpointing(self.peft, True)
        self.peft.train()  # transformers checkpoints only in training mode (dropout is off anyway)

    def save(self, folder: Path) -> None:
        """``folder/policy``, ``folder/value`` (PEFT adapters) and ``folder/value_head.pt``."""
        self.peft.save_pretrained(folder, selected_adapters=[POLICY, VALUE])
        torch.save(self.value_head.state_dict(), folder / VALUE_HEAD_FILE)


def build(config: PPOConfig, checkpoint: Path | None = None) -> Models:
    """Base + the two adapters (fresh, or loaded from ``checkpoint``) + the value head."""
    from peft import PeftModel, get_peft_model

    base = load_base(config)
    if checkpoint is None:
        peft = get_peft_model(base, lora_config(config, config.modules_to_save), adapter_name=POLICY)
        peft.add_adapter(VALUE, lora_config(config, None))
    else:
        peft = PeftModel.from_pretrained(base, checkpoint / POLICY, adapter_name=POLICY, is_trainable=True)
        peft.load_adapter(checkpoint / VALUE, adapter_name=VALUE, is_trainable=True)
    hidden = base.config.get_text_config().hidden_size
    head = nn.Linear(hidden, 1).to(device=next(base.parameters()).device, dtype=torch.float32)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    if checkpoint is not None:
        head.load_state_dict(torch.load(checkpoint / VALUE_HEAD_FILE, map_location=head.weight.device))
    models = Models(peft, head, config.gradient_checkpointing)
    if config.gradient_checkpointing:
        models.enable_checkpointing()
    models.use(POLICY)
    return models


@dataclass
class PolicyOutput:
    logprobs: Tensor  # (B, T) log pi(answer token)
    entropy: Tensor | None  # (B, T), when asked


def policy_forward(models: Models, rollout: Rollout, rows: Tensor | None = None, *, reference: bool = False,
                   with_entropy: bool = False, temperature: float = 1.0) -> PolicyOutput:
    """log pi (or log pi_ref with ``reference``) of each answer token, from one forward over prompt + answer.

    Only the T + 1 last positions go through lm_head (``logits_to_keep``); position P + t - 1 scores token t."""
    models.use(POLICY)
    tokens = rollout.tokens if rows is None else rollout.tokens[rows]
    context = models.peft.disable_adapter() if reference else contextlib.nullcontext()
    with context:
        logits = models.peft(**sequence_inputs(rollout, rows), logits_to_keep=tokens.shape[1] + 1).logits
    logits = logits[:, :-1].float() / temperature
    return PolicyOutput(losses.token_logprobs(logits, tokens), losses.entropy(logits) if with_entropy else None)


def value_forward(models: Models, rollout: Rollout, rows: Tensor | None = None) -> Tensor:
    """V of each answer token (B, T): the head on the value adapter's last hidden state at position t - 1."""
    models.use(VALUE)
    tokens = rollout.tokens if rows is None else rollout.tokens[rows]
    out = models.peft(**sequence_inputs(rollout, rows), logits_to_keep=1, output_hidden_states=True)
    hidden = out.hidden_states[-1][:, rollout.prompt_width - 1: rollout.prompt_width - 1 + tokens.shape[1]]
    values = models.value_head(hidden.float()).squeeze(-1)
    models.use(POLICY)
    return values
