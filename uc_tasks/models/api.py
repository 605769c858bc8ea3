"""``--model uc_openai``: any OpenAI-compatible chat endpoint as an lmms-eval model.

    export OPENAI_API_KEY=...   # the key only ever comes from the environment
    lmms-eval --model uc_openai --model_args model=gpt-4o,base_url=https://api.openai.com/v1 ...

All requests of a run go out concurrently (``num_concurrent``), in windows of ``window`` requests
(default 16 x ``num_concurrent``) so that encoded full-size images never pile up in memory; the next
window is encoded while the current one is in flight. Every finished request is written to
a resume cache at once, so a rerun after a crash sends only what is missing. Each distinct image is
encoded once per run, however many prompts ask about it. A request without an answer (blocked by
the provider, or failed after every retry) becomes ``uc_tasks.failures.failed_answer``, never an
empty or invented answer; the tasks leave it out of the metrics and count it.

Against a vLLM server of a local model, ``add_special_tokens=true`` has vLLM tokenise the chat prompt with the
tokenizer's special tokens (BOS), as a transformers processor does: the prompt is then token for token the one
``uc_hf_vlm`` builds, and greedy answers are equal (tests/test_vllm.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image

from uc_tasks.data.visuals import IMAGE_ID_KEY, data_url
from uc_tasks.errors import stop
from uc_tasks.failures import failed_answer
from uc_tasks.http.cache import cache_file
from uc_tasks.http.client import (
    DEFAULT_BACKOFF_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_KEY_ENV,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    ApiError,
    ChatClient,
    ChatResult,
    check_settings,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CACHE_DIR = "~/.cache/unsafeconcepts/api"
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
_CLI_EXTRAS = ("batch_size", "max_batch_size", "device")  # lmms-eval passes these to every model
_NO_CACHE = ("none", "off", "false", "")


class OpenAIVLM(lmms):
    """An OpenAI-compatible chat-completions endpoint; images go as base64 data URLs."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_key_env: str = DEFAULT_KEY_ENV,
        num_concurrent: int = DEFAULT_CONCURRENCY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry_backoff: float = DEFAULT_BACKOFF_S,
        cache_dir: str | bool = DEFAULT_CACHE_DIR,
        image_format: str = "png",
        image_quality: int = 90,
        window: int | None = None,
        add_special_tokens: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if "api_key" in kwargs:
            raise stop(f"uc_openai: do not pass api_key in --model_args (lmms-eval prints and saves model_args); "
                       f"export {api_key_env}=<key> instead, or name another variable with api_key_env=NAME")
        unknown = sorted(set(kwargs) - set(_CLI_EXTRAS))
        if unknown:
            raise stop(f"uc_openai: unknown model_args {', '.join(unknown)}; known: model, base_url, api_key_env, "
                       "num_concurrent, max_retries, timeout, retry_backoff, cache_dir, image_format, image_quality, "
                       "window, add_special_tokens")
        if model is None or str(model).strip() == "":
            raise stop("uc_openai: name the model, e.g. --model_args model=gpt-4o,base_url=https://...")
        fmt = str(image_format).lower()
        if fmt not in IMAGE_FORMATS:
            raise stop(f"uc_openai: image_format={image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
        if not isinstance(image_quality, int) or not 1 <= image_quality <= 100:
            raise stop(f"uc_openai: image_quality must be an integer from 1 to 100, got {image_quality!r}")
        try:
            check_settings(num_concurrent=num_concurrent, max_retries=max_retries, timeout=timeout,
                           retry_backoff=retry_backoff)
        except ValueError as e:
            raise stop(f"uc_openai: {e}") from None
        try:
            self.window = int(window) if window is not None else 16 * int(num_concurrent)
        except ValueError:
            self.window = 0
        if self.window < 1:
            raise stop(f"uc_openai: window must be a positive number of requests, got {window!r}")
        self.model = str(model)
        flag = str(add_special_tokens).strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise stop(f"uc_openai: add_special_tokens must be true or false, got {add_special_tokens!r}")
        self.add_special_tokens = flag in ("true", "1")
        self.image_format, self.image_quality = IMAGE_FORMATS[fmt], image_quality
        no_cache = cache_dir is False or str(cache_dir).strip().lower() in _NO_CACHE
        self.cache_path = None if no_cache else cache_file(str(cache_dir), self.model)
        try:
            self.client = ChatClient(
                str(base_url), api_key_env=str(api_key_env), concurrency=num_concurrent, max_retries=max_retries,
                timeout=timeout, backoff=retry_backoff, cache_path=self.cache_path,
            )
            self.client.check_reachable()
        except (ValueError, ApiError) as e:
            raise stop(f"uc_openai: {e}") from None
        self._encoded: dict[str, str] = {}
        self.images_encoded = 0
        self.failures: Counter = Counter()
        logger.info(f"uc_openai: {self.model} at {self.client.public_base_url}, {num_concurrent} concurrent "
                    f"per server, resume cache {self.cache_path or 'off'} ({len(self.client.cache or [])} answers)")

    # -- counters ------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """This run's counters: requests, cache hits, HTTP attempts, retries by cause, failures by kind,
        images encoded."""
        stats = self.client.stats.as_dict()
        return {**stats, "failures": dict(sorted(self.failures.items())), "images_encoded": self.images_encoded}

    # -- requests ------------------------------------------------------------------------------
    def _data_url(self, image: Image.Image) -> str:
        """The image as a data URL, encoded once per run (keyed on its stable id, else its pixels)."""
        key = image.info.get(IMAGE_ID_KEY)
        if key is None:
            h = hashlib.sha256(f"{image.mode}{image.size}".encode())
            h.update(image.tobytes())
            key = "pixels:" + h.hexdigest()
        url = self._encoded.get(key)
        if url is None:
            url = data_url(image, self.image_format, self.image_quality)
            self._encoded[key] = url
            self.images_encoded += 1
        return url

    def _visuals(self, doc_to_visual: Any, doc_id: int, task: str, split: str) -> list[Image.Image]:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual is not None else None
        flat: list[Any] = []
        stack = [visuals]
        while stack:
            v = stack.pop(0)
            if isinstance(v, list | tuple):
                stack[:0] = list(v)
            elif v is not None:
                flat.append(v)
        for v in flat:
            if not isinstance(v, Image.Image):
                raise stop(f"uc_openai: task {task} gave a {type(v).__name__} visual; this backend sends PIL images")
        return flat

    def payload(self, context: str, gen_kwargs: dict[str, Any], images: Sequence[Image.Image]) -> dict[str, Any]:
        """The chat request for one prompt: images first, then the text; settings from the task.
        ``until`` is not sent: the measurement generates up to ``max_new_tokens``, as the paper did."""
        content: str | list[dict[str, Any]] = context
        if images:
            content = [{"type": "image_url", "image_url": {"url": self._data_url(im)}} for im in images]
            content.append({"type": "text", "text": context})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": int(gen_kwargs.get("max_new_tokens", 512)),
        }
        if self.add_special_tokens:  # vLLM's extension: the chat prompt gets BOS as a transformers processor adds it
            body["add_special_tokens"] = True
        if gen_kwargs.get("do_sample") is False:
            body["temperature"] = 0.0
        else:
            body["temperature"] = float(gen_kwargs.get("temperature", 0.0))
            if gen_kwargs.get("top_p") is not None:
                body["top_p"] = float(gen_kwargs["top_p"])
        return body

    def _payloads(self, requests: Sequence[Any]) -> list[dict[str, Any]]:
        payloads = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            payloads.append(self.payload(context, dict(gen_kwargs or {}), self._visuals(doc_to_visual, doc_id,
                                                                                          task, split)))
        return payloads

    def generate_until(self, requests: list[Any]) -> list[str]:
        """All requests concurrently, in windows of ``window`` requests; answers (or failure markers)
        in request order. Encoded images live for one window only, so memory stays bounded on full-size
        images, and the next window is encoded while the current one is in flight."""
        windows = [requests[i : i + self.window] for i in range(0, len(requests), self.window)]
        answers: list[str] = []
        seen: Counter = Counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="uc-api-encode") as pool:
            upcoming = pool.submit(self._payloads, windows[0]) if windows else None
            for k in range(len(windows)):
                payloads = upcoming.result()
                self._encoded.clear()  # the next window encodes its own images
                upcoming = pool.submit(self._payloads, windows[k + 1]) if k + 1 < len(windows) else None
                try:
                    results = self.client.complete(payloads, seen)
                except (ApiError, OSError) as e:
                    raise stop(f"uc_openai: {e}") from None
                answers += [self._answer(r) for r in results]
                self.client.forget_images()
        logger.info(f"uc_openai summary {json.dumps(self.counters(), sort_keys=True)}")
        return answers

    def _answer(self, result: ChatResult) -> str:
        if result.failure is None and result.text is not None:
            return result.text
        kind = result.failure or "error"
        self.failures[kind] += 1
        return failed_answer(kind, result.detail)

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError("uc_openai answers single-turn generate_until tasks only")

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "uc_openai cannot score log-likelihoods: chat-completion APIs return text only; "
            "use a generate_until task (all UnsafeConcepts tasks are)"
        )

    def clean(self) -> None:
        self.client.close()


__all__ = ["OpenAIVLM", "DEFAULT_BASE_URL", "DEFAULT_CACHE_DIR"]
