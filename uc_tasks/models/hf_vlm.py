"""``--model uc_hf_vlm``: any local transformers image-text-to-text VLM, with an optional LoRA adapter.

    lmms-eval --model uc_hf_vlm --model_args pretrained=<folder>[,adapter=<lora folder>][,dtype=bfloat16] \\
        --tasks unsafeconcepts --batch_size 8
    accelerate launch --num_processes N -m lmms_eval --model uc_hf_vlm ...      # data parallel
    # the same on CPU (accelerate 1.15's --cpu starts one process only):
    ACCELERATE_USE_CPU=1 python -m accelerate.commands.launch --multi_gpu --num_processes N -m lmms_eval ...

Model args: ``pretrained`` (folder or cached hub id), ``adapter`` (PEFT LoRA folder), ``merge_adapter``
(false), ``dtype`` (float32 | bfloat16 | float16 | auto; default auto), ``device`` (default: the
accelerator's device), ``device_map`` (e.g. auto: one process spread over several GPUs),
``batch_size`` (also ``--batch_size``), ``min_pixels``/``max_pixels`` (processors that take them),
``max_input_tokens`` (default: the text model's max_position_embeddings), ``seed`` (0),
``trust_remote_code`` (false), ``attn_implementation``.

Generation follows the task's ``generation_kwargs`` with ``--gen_kwargs`` merged in: ``max_new_tokens``,
``temperature``, ``top_p``, ``top_k``, ``do_sample``; temperature 0 or do_sample false is greedy.
``until`` is not applied: answers run to EOS or ``max_new_tokens``, as in the paper and ``uc_openai``.
The model's special and image placeholder tokens are suppressed (EOS excepted); only new tokens are
decoded, then stripped.

Reproducibility. Sampled requests use one random stream each, seeded from ``seed`` and the request's
task, split, doc id and index (see ``hf_generation``). Guaranteed: the same answers for the same
model, data, settings, device type and library versions, whatever the batch size, the order of the
requests or the number of processes, up to floating-point differences between batch shapes (padded
batches run other matrix shapes; a near tie between two tokens can then flip, rarely, more so in
bfloat16). Not guaranteed: equal answers on another device type (CPU vs CUDA streams differ),
another dtype or another library version. Greedy decoding has the same guarantee.

Failures. A batch whose generation raises is retried one request at a time; a request that still
fails (or whose images cannot be loaded, or whose prompt exceeds ``max_input_tokens``) gets
``failed_answer(ERROR, "<type>: <message>")``, which the tasks count and leave out of the metrics. It
is never an empty answer. Model-level problems stop the run with one line (:class:`ModelArgError`).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger as eval_logger
from tqdm import tqdm

from uc_tasks.errors import one_line
from uc_tasks.failures import ERROR, failed_answer, parse_failure
from uc_tasks.models import hf_load, special_tokens
from uc_tasks.models.hf_generation import GenSettings, SeededSampler, parse_gen_kwargs, request_seed
from uc_tasks.models.hf_load import ModelArgError, as_bool, as_int


class InputTooLong(ValueError):
    """A prompt longer than ``max_input_tokens``."""


@dataclass
class _Request:
    """One request, ready to batch: its chat-formatted prompt, images and seed."""

    position: int
    prompt: str
    images: list[Any]
    seed: int
    label: str


class HFVLM(lmms):
    """A transformers VLM (AutoProcessor + AutoModelForImageTextToText) for lmms-eval ``generate_until`` tasks."""

    def __init__(self, pretrained: str | None = None, adapter: str | None = None, merge_adapter: Any = False,
                 dtype: Any = "auto", device: str | None = None, device_map: str | None = None,
                 batch_size: Any = 1, max_batch_size: Any = None, min_pixels: Any = None, max_pixels: Any = None,
                 max_input_tokens: Any = None, seed: Any = 0, trust_remote_code: Any = False,
                 attn_implementation: str | None = None, **unknown: Any) -> None:
        super().__init__()
        if unknown:
            raise ModelArgError(f"unknown model arg(s) {', '.join(sorted(unknown))}; accepted: pretrained, adapter, "
                                f"merge_adapter, dtype, device, device_map, batch_size, min_pixels, max_pixels, "
                                f"max_input_tokens, seed, trust_remote_code, attn_implementation")
        if not pretrained:
            raise ModelArgError("pretrained= is required: --model_args pretrained=<model folder>")
        if str(batch_size).startswith("auto"):
            raise ModelArgError("batch_size=auto is not supported; pass --batch_size N")
        self.pretrained = str(pretrained)
        self.batch_size_per_gpu = as_int("batch_size", batch_size)
        self.seed = as_int("seed", seed, minimum=0)
        torch_dtype = hf_load.as_dtype(dtype)
        remote = as_bool("trust_remote_code", trust_remote_code)
        merge = as_bool("merge_adapter", merge_adapter)
        user_limit = None if max_input_tokens is None else as_int("max_input_tokens", max_input_tokens)
        pixels = {k: None if v is None else as_int(k, v) for k, v in (("min_pixels", min_pixels),
                                                                       ("max_pixels", max_pixels))}

        self.accelerator = Accelerator()
        self._place(device, device_map)
        config = hf_load.load_config(self.pretrained, remote)
        self.processor = hf_load.load_processor(self.pretrained, config, remote)
        hf_load.set_pixel_limits(self.processor, self.pretrained, **pixels)
        self._tokenizer = getattr(self.processor, "tokenizer", None)
        if self._tokenizer is None or not getattr(self.processor, "chat_template", None):
            raise ModelArgError(f"pretrained={self.pretrained} has no tokenizer or no chat template in its processor; "
                                f"add chat_template.jinja to the folder")
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        model = hf_load.load_model(self.pretrained, config, torch_dtype, self.device_map, remote, attn_implementation)
        if adapter:
            model = hf_load.load_adapter(model, str(adapter), self.pretrained, merge)
        if self.device_map is None:
            model = model.to(self._device)
        else:
            self._device = model.device
        self._model = model.eval()
        self._config = config
        self.max_input_tokens = user_limit or getattr(config.get_text_config(), "max_position_embeddings", None)
        self.suppress_ids = self._suppressed_ids()
        shown = ", ".join(map(str, self.suppress_ids[:12])) + (" ..." if len(self.suppress_ids) > 12 else "")
        eval_logger.info(f"uc_hf_vlm: {self.pretrained} ({type(self._model).__name__}, {self._model.dtype}) on "
                         f"{self._device}, rank {self._rank}/{self._world_size}, batch size {self.batch_size_per_gpu}, "
                         f"max_input_tokens {self.max_input_tokens}, suppressing {len(self.suppress_ids)} token ids "
                         f"[{shown}]")

    def _place(self, device: str | None, device_map: str | None) -> None:
        """Device and process layout: data parallel under ``accelerate launch``, else one process."""
        acc = self.accelerator
        rank, world = acc.process_index, acc.num_processes
        if world == 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            # e.g. `accelerate launch --multi_gpu` on a machine without GPUs: accelerate reports one process
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if world > 1:
            if device_map:
                raise ModelArgError("device_map cannot be combined with accelerate data parallelism; drop device_map "
                                    "or run one process")
            self._device, self.device_map = acc.device, None
            self._rank, self._world_size = rank, world
            if device and torch.device(device).type != acc.device.type:
                eval_logger.warning(f"uc_hf_vlm: device={device} ignored: accelerate placed rank {rank} on "
                                    f"{acc.device}")
            return
        self.device_map = device_map or None
        if device is None:
            self._device = acc.device
            eval_logger.info(f"uc_hf_vlm: no device given, using {self._device}")
            return
        try:
            self._device = torch.device(device)
        except RuntimeError as e:
            raise ModelArgError(f"device={device!r} is not a torch device ({one_line(e)}); use cpu, cuda or cuda:N") \
                from None
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise ModelArgError(f"device={device} but CUDA is not available here; use device=cpu")
        if self._device.type == "cuda" and (self._device.index or 0) >= torch.cuda.device_count():
            raise ModelArgError(f"device={device} but this machine has {torch.cuda.device_count()} CUDA device(s)")

    def _suppressed_ids(self) -> list[int]:
        """Image/video placeholders and the tokenizer's special tokens, never EOS: a model must not emit them."""
        return special_tokens.suppressed_ids(self._model, self.processor)

    @property
    def model(self) -> Any:
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def config(self) -> Any:
        return self._config

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("uc_hf_vlm generates answers only: loglikelihood (multiple_choice tasks) is not "
                                  "implemented; use generate_until tasks")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("uc_hf_vlm does not implement multi-round generation")

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answers in request order; failed requests get a failure marker (see the module docstring)."""
        answers: list[str | None] = [None] * len(requests)
        groups: dict[GenSettings, list[_Request]] = {}
        seen: Counter = Counter()
        for position, instance in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
            settings = parse_gen_kwargs(dict(gen_kwargs or {}))
            key = (task, split, doc_id, instance.idx)
            seed = request_seed(self.seed, task, split, doc_id, instance.idx, seen[key])
            seen[key] += 1
            label = f"{task} doc {doc_id}"
            try:
                images = self._visuals(doc_to_visual(self.task_dict[task][split][doc_id]))
                prompt = self._prompt(context, len(images))
            except Exception as e:
                answers[position] = self._failed(label, e)
                continue
            groups.setdefault(settings, []).append(_Request(position, prompt, images, seed, label))
        stops = {tuple(r.args[1].get("until") or ()) for r in requests if isinstance(r.args[1], dict)} - {()}
        if stops:
            eval_logger.info(f"uc_hf_vlm: until={sorted(stops)} not applied: answers run to EOS or max_new_tokens")
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="uc_hf_vlm")
        progress.update(sum(a is not None for a in answers))
        for settings, group in groups.items():
            group.sort(key=lambda r: (len(r.images), len(r.prompt)), reverse=True)  # similar lengths batch together
            for start in range(0, len(group), self.batch_size):
                batch = group[start : start + self.batch_size]
                for request, answer in zip(batch, self._answer(batch, settings), strict=True):
                    answers[request.position] = answer
                progress.update(len(batch))
        progress.close()
        failures = sum(parse_failure(a) is not None for a in answers)
        if failures:
            eval_logger.warning(f"uc_hf_vlm: {failures} of {len(requests)} request(s) failed (marked, not scored)")
        assert all(a is not None for a in answers)
        return answers  # type: ignore[return-value]

    def _visuals(self, visuals: Any) -> list[Any]:
        from PIL import Image

        items = visuals if isinstance(visuals, (list, tuple)) else ([] if visuals is None else [visuals])
        flat = [v for item in items for v in (item if isinstance(item, (list, tuple)) else [item])]
        for v in flat:
            if not isinstance(v, Image.Image):
                raise TypeError(f"uc_hf_vlm takes PIL images only, got {type(v).__name__}")
        return [v.convert("RGB") if v.mode != "RGB" else v for v in flat]

    def _prompt(self, context: str, n_images: int) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": context}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)

    def _answer(self, batch: list[_Request], settings: GenSettings) -> list[str]:
        """Generate for a batch; if it raises, each request alone; a request that still fails is marked."""
        try:
            return self._generate(batch, settings)
        except Exception as e:
            if len(batch) == 1:
                return [self._failed(batch[0].label, e)]
            eval_logger.warning(f"uc_hf_vlm: a batch of {len(batch)} failed ({one_line(e)}); retrying one by one")
            self._free_memory()
        return [answer for request in batch for answer in self._answer([request], settings)]

    def _failed(self, label: str, error: BaseException) -> str:
        eval_logger.error(f"uc_hf_vlm: generation failed for {label}: {one_line(error)}")
        self._free_memory()
        return failed_answer(ERROR, one_line(error))

    def _free_memory(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def _generate(self, batch: list[_Request], settings: GenSettings) -> list[str]:
        images = [image for request in batch for image in request.images]
        inputs = self.processor(text=[r.prompt for r in batch], images=images or None, padding=True,
                                return_tensors="pt")
        longest = int(inputs["attention_mask"].sum(dim=1).max())
        if self.max_input_tokens is not None and longest > self.max_input_tokens:
            raise InputTooLong(f"the prompt has {longest} tokens, more than max_input_tokens={self.max_input_tokens}")
        inputs = inputs.to(self._device, dtype=self._model.dtype)
        config = copy.deepcopy(self._model.generation_config)
        config.update(do_sample=False, temperature=None, top_p=None, top_k=None, num_beams=1, max_length=None,
                      max_new_tokens=settings.max_new_tokens, suppress_tokens=self.suppress_ids or None,
                      pad_token_id=self._tokenizer.pad_token_id)
        processors = [] if settings.greedy else [
            SeededSampler([r.seed for r in batch], settings.temperature, settings.top_p, settings.top_k)]
        output = self._model.generate(**inputs, generation_config=config, logits_processor=processors)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
