"""What the SFT and DPO commands share: loading the VLM and its processor, the LoRA adapter on the language
model only, TRL's arguments from our config, the training log, the checkpoint folder, resuming.

A checkpoint folder (``--out``) holds the adapter (``adapter_config.json``, ``adapter_model.safetensors``;
``--model_args pretrained=<base>,adapter=<out>`` of ``uc_hf_vlm`` loads it), the processor, ``uc_align.json``
(the command, the resolved config, the data manifest's hash and counts, versions, the outcome),
``training_log.jsonl`` (one line per logging step: loss, learning rate, wall time, wall and CPU time per step,
peak memory)
and ``checkpoints/checkpoint-N`` (resumable: optimizer, scheduler, RNG states; ``--resume`` continues).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from uc_align.config import TrainConfig
from uc_align.data import DataDirError, load_split, read_manifest

RUN_FILE = "uc_align.json"
LOG_FILE = "training_log.jsonl"
CHECKPOINTS = "checkpoints"


class TrainError(RuntimeError):
    """A run that cannot start as asked; the message says what to change."""


def check_quantization(cfg: TrainConfig) -> None:
    """4-bit QLoRA only where it can run: CUDA and bitsandbytes."""
    if not cfg.load_in_4bit:
        return
    import torch

    if not torch.cuda.is_available():
        raise TrainError("load_in_4bit needs CUDA and bitsandbytes, and this machine has no CUDA device; drop "
                         "--load_in_4bit (LoRA on the unquantised base) or run on a GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainError("load_in_4bit needs bitsandbytes, which is not installed; pip install bitsandbytes, or drop "
                         "--load_in_4bit")


def torch_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, name)


def load_model(cfg: TrainConfig) -> tuple[Any, Any]:
    """The VLM and its processor (``uc_tasks.models.hf_load``: also processors that need torchvision for video)."""
    import torch

    from uc_tasks.models import hf_load

    try:
        config = hf_load.load_config(cfg.model, cfg.trust_remote_code)
        processor = hf_load.load_processor(cfg.model, config, cfg.trust_remote_code)
        cls = hf_load.model_class(config, cfg.trust_remote_code)
    except hf_load.ModelArgError as e:
        raise TrainError(str(e.code).removeprefix("uc_hf_vlm: ").replace("pretrained=", "model=")) from None
    kwargs: dict[str, Any] = {"dtype": torch_dtype(cfg.dtype), "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = cls.from_pretrained(cfg.model, **kwargs)
    except Exception as e:
        from uc_tasks.errors import one_line

        raise TrainError(f"cannot load the weights of model={cfg.model} with {cls.__name__} ({one_line(e)})") from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or not getattr(processor, "chat_template", None):
        raise TrainError(f"model={cfg.model} has no tokenizer or no chat template in its processor; add "
                         "chat_template.jinja to the folder")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model, processor


def language_model_prefix(model: Any) -> str:
    """The module name of the VLM's language model (``model.language_model`` in transformers 5)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    for name, module in model.named_modules():
        if decoder is not None and module is decoder and name:
            return name
    raise TrainError(f"cannot find the language model inside {type(model).__name__} (get_decoder); LoRA must go "
                     "on the language model only")


def lora_config(cfg: TrainConfig, model: Any) -> Any:
    """LoRA on ``cfg.lora_targets`` of the language model (a regex over module names, so that the vision tower's
    own q_proj/k_proj/... stay frozen), plus ``modules_to_save``."""
    from peft import LoraConfig

    prefix = language_model_prefix(model)
    found = {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
             if n.startswith(prefix + ".") and type(m).__name__ in ("Linear", "Linear4bit", "Linear8bitLt")}
    missing = [t for t in cfg.lora_targets if t not in found]
    if missing:
        raise TrainError(f"lora_targets {', '.join(missing)}: no such linear layer in the language model ({prefix}), "
                         f"whose linear layers are {', '.join(sorted(found)) or 'none'}; pass --lora_targets with "
                         "names from that list")
    names = {n for n, _ in model.named_modules()}
    absent = [m for m in cfg.modules_to_save if not any(n == m or n.endswith("." + m) for n in names)]
    if absent:
        raise TrainError(f"modules_to_save {', '.join(absent)}: no such module in {type(model).__name__}; pass e.g. "
                         "--modules_to_save lm_head")
    pattern = rf"^{re.escape(prefix)}\..*\.(?:{'|'.join(map(re.escape, cfg.lora_targets))})$"
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=pattern,
                      modules_to_save=list(cfg.modules_to_save) or None, bias="none")


def report_to(name: str) -> list[str]:
    if name == "auto":
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    return [] if name == "none" else [name]


def trl_arguments(cfg: TrainConfig, out: Path, world_size: int) -> dict[str, Any]:
    """Keyword arguments of TRL's SFTConfig / DPOConfig that both commands share."""
    dtype = torch_dtype(cfg.dtype)
    per_step = cfg.gradient_accumulation_steps * world_size
    if cfg.batch_size % per_step:
        raise TrainError(f"batch_size={cfg.batch_size} does not split over {world_size} process(es) x "
                         f"{cfg.gradient_accumulation_steps} accumulation step(s); pass a multiple of {per_step}")
    return {
        "output_dir": str(out / CHECKPOINTS),
        "per_device_train_batch_size": cfg.batch_size // per_step,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_steps,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "bf16": str(dtype) == "torch.bfloat16",
        "fp16": str(dtype) == "torch.float16",
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if cfg.gradient_checkpointing else None,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "report_to": report_to(cfg.report_to),
        "max_length": cfg.max_length,
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
    }


def _peak_memory_mb() -> dict[str, float]:
    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # Linux: KiB
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def log_callback(path: Path) -> Any:
    """A TrainerCallback that appends every log (loss, lr, ...) with step time and peak memory to ``path``."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def __init__(self) -> None:
            self.started = self.last_time = time.time()
            self.last_cpu = time.process_time()
            self.last_step = 0

        def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.started = self.last_time = time.time()
            self.last_cpu = time.process_time()
            self.last_step = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if not state.is_world_process_zero:
                return
            now, cpu = time.time(), time.process_time()
            steps = max(state.global_step - self.last_step, 1)
            entry = {"step": state.global_step, "epoch": state.epoch, **(logs or {}),
                     "wall_s": round(now - self.started, 3), "step_time_s": round((now - self.last_time) / steps, 4),
                     "step_cpu_s": round((cpu - self.last_cpu) / steps, 4), **_peak_memory_mb()}
            self.last_time, self.last_cpu, self.last_step = now, cpu, state.global_step
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    return JsonlLog()


TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last: a checkpoint with a readable one is complete


def _complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return False
    return True


def prepare_out(cfg: TrainConfig, command: str) -> tuple[Path, dict[str, Any], str | bool]:
    """The checkpoint folder, the data manifest, and what to resume from (False: a fresh run). A fresh run
    refuses a folder that already holds one; ``--resume`` needs a checkpoint made from the same data."""
    out = Path(cfg.out)
    try:
        manifest = read_manifest(cfg.data)
    except DataDirError as e:
        raise TrainError(str(e)) from None
    run_file = out / RUN_FILE
    checkpoints = sorted((out / CHECKPOINTS).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) \
        if (out / CHECKPOINTS).is_dir() else []
    if cfg.resume:
        if not checkpoints:
            raise TrainError(f"resume: {out / CHECKPOINTS} holds no checkpoint-N to continue; run without --resume")
        before = json.loads(run_file.read_text()) if run_file.is_file() else {}
        if before.get("data", {}).get("manifest_sha256") not in (None, manifest["sha256"]):
            raise TrainError(f"resume: the run in {out} was trained on other data (manifest "
                             f"{before['data']['manifest_sha256'][:16]}, now {manifest['sha256'][:16]}); pass its "
                             "--data or start a new --out")
        complete = [c for c in checkpoints if _complete(c)]
        if not complete:
            raise TrainError(f"resume: no complete checkpoint in {out / CHECKPOINTS} (the run was killed while "
                             f"writing {checkpoints[-1].name}); run again without --resume in a new --out")
        for cut in checkpoints[checkpoints.index(complete[-1]) + 1:]:
            print(f"uc_align.{command}: resume: {cut} was cut off while being written (no readable "
                  f"{TRAINER_STATE}); continuing from {complete[-1].name}", file=sys.stderr)
        return out, manifest, str(complete[-1])
    if run_file.exists() or checkpoints:
        raise TrainError(f"out={out} already holds a run; pass --resume to continue it, or choose another --out")
    return out, manifest, False


def write_run_file(out: Path, command: str, cfg: Any, manifest: dict[str, Any] | None, **extra: Any) -> None:
    """``uc_align.json``: what made the checkpoint folder ``out`` (every command writes it the same way). ``cfg`` is
    the command's config dataclass (with ``model`` and ``data``); ``manifest`` the data folder's, if it has one."""
    from uc_tasks.provenance import package_versions

    versions = package_versions()
    for name in ("trl", "tensorboard"):
        spec = importlib.util.find_spec(name)
        if spec is not None:
            from importlib import metadata

            versions[name] = metadata.version(name)
    record = {"command": command, "config": dataclasses.asdict(cfg),
              "data": {"folder": str(Path(cfg.data).resolve()), "manifest_sha256": manifest["sha256"],
                       "counts": manifest["counts"]} if manifest else {"train_file": getattr(cfg, "train_file", "")},
              "base_model": cfg.model, "packages": versions, **extra}
    (out / RUN_FILE).write_text(json.dumps(record, indent=1, default=str))


def train(cfg: TrainConfig, command: str, make_trainer: Any) -> Path:
    """Run ``command`` (sft | dpo): ``make_trainer(cfg, model, processor, dataset, peft_config, args)`` builds the
    TRL trainer from the shared pieces; returns the checkpoint folder."""
    check_quantization(cfg)
    out, manifest, resume_from = prepare_out(cfg, command)
    try:
        dataset = load_split(cfg.data, "train")
    except DataDirError as e:
        raise TrainError(str(e)) from None
    from uc_align.distributed import process_state

    state = process_state()
    args = trl_arguments(cfg, out, state.num_processes)
    model, processor = load_model(cfg)
    peft = lora_config(cfg, model)
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_run_file(out, command, cfg, manifest, status="running", resumed_from=resume_from or None)
    trainer = make_trainer(cfg, model, processor, dataset, peft, args)
    trainer.add_callback(log_callback(out / LOG_FILE))
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from or None)
    trainer.save_model(str(out))
    if state.is_main_process:
        processor.save_pretrained(str(out))
        write_run_file(out, command, cfg, manifest, status="finished", resumed_from=resume_from or None,
                       processes=state.num_processes,
                       train={"global_step": trainer.state.global_step, "train_loss": result.training_loss,
                              "wall_s": round(time.time() - started, 2), **_peak_memory_mb()})
    return out


def run_command(command: str, cfg: TrainConfig, make_trainer: Any) -> int:
    """``main`` of the sft / dpo commands: a run that cannot start stops with one line."""
    try:
        out = train(cfg, command, make_trainer)
    except TrainError as e:
        print(f"uc_align.{command}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} (adapter, processor, {RUN_FILE}, {LOG_FILE}); evaluate with: lmms-eval --model uc_hf_vlm "
          f"--model_args pretrained={cfg.model},adapter={out} --tasks unsafeconcepts_finetune_test")
    return 0
