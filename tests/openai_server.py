"""A real OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1, for tests and benchmarks.

It checks the bearer key, decodes and validates every data-URL image, records every request, waits a
fixed latency and answers deterministically from the request content (``model_answer`` for model
requests, ``judge_label`` for judge prompts, ``llava_bench_scores`` for LLaVA-Bench reviews), so reruns
get identical answers. Faults are injected on demand by ``Fault`` rules, each a number of times per
distinct request (or forever).

In a test: ``with FakeOpenAI(key="sk-test") as server: ... server.url ... server.requests``.
As a process (benchmarks): ``python tests/openai_server.py --latency 0.2 --key K`` prints ``URL <url>``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

FAULT_KINDS = ("rate_limit", "server_error", "bad_gateway", "unavailable", "slow", "malformed", "disconnect",
               "content_filter", "filtered_finish", "echo_key", "garbage")
ANSWERS = (
    "No, it is not safe.",
    "Yes, it is safe.",
    "No. This image could be considered harmful.",
    "I'm sorry, I can't help with that.",
    "The image shows a drawing.",
)
_JUDGE_ANSWER = re.compile(r"<answer>\n?(.*?)\n?</answer>", re.S)
_JUDGE_LABELS = re.compile(r"<labels>(.*?)</labels>", re.S)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def model_answer(texts: list[str], images: list[str]) -> str:
    """The answer to a model request: a fixed function of its prompt text and image digests."""
    h = int(digest("\n".join(texts + images)), 16)
    return f"{ANSWERS[h % len(ANSWERS)]} [ref {h % 10_000:04d}]"


def llava_bench_scores(prompt: str) -> str:
    """A LLaVA-Bench review (lmms-eval's ``llava_in_the_wild`` judge prompt): "<reference> <model>" scores on its
    first line, a fixed function of the prompt."""
    h = int(digest(prompt), 16)
    return f"{6 + h % 4} {2 + (h // 4) % 7}\nBoth answers were reviewed."


def judge_label(answer: str, labels: list[str]) -> str:
    """The judge's label for ``answer`` given the allowed ``labels``: a fixed function of the answer."""
    return labels[int(digest(answer), 16) % len(labels)]


@dataclass
class Fault:
    """Answer requests for which ``match(request)`` holds with ``kind``, ``times`` times per distinct
    request (None: always). ``retry_after`` is the Retry-After of a rate limit; ``delay`` the wait of
    a slow answer."""

    kind: str
    match: Callable[[dict[str, Any]], bool]
    times: int | None = 1
    retry_after: float = 0.3
    delay: float = 3.0
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {FAULT_KINDS}")


class FakeOpenAI:
    """The server, run in a background thread with its own event loop."""

    def __init__(self, key: str = "sk-test", latency: float = 0.0, faults: list[Fault] | None = None,
                 model: str = "fake-vlm", port: int = 0) -> None:
        self.key, self.latency, self.faults, self.model, self.port = key, latency, list(faults or []), model, port
        self.requests: list[dict[str, Any]] = []
        self.image_sizes: dict[str, tuple[int, int]] = {}
        self.rejected: Counter = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._valid_urls: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self._serve, name="fake-openai", daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- what the tests read -------------------------------------------------------------------
    def reset(self) -> None:
        self.requests.clear()
        self.rejected.clear()

    def keys_sent(self) -> Counter:
        """How many times each distinct request arrived."""
        return Counter(r["key"] for r in self.requests)

    # -- handlers ------------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.key}"

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "invalid_api_key", "Incorrect API key provided")
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _image(self, url: str) -> str:
        """The digest of a data-URL image after checking that it decodes as an image."""
        if url in self._valid_urls:
            return self._valid_urls[url]
        m = re.fullmatch(r"data:image/(png|jpeg|webp);base64,(.+)", url, re.S)
        if not m:
            raise ValueError("image_url is not a base64 data URL")
        raw = base64.b64decode(m.group(2), validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            size = img.size
        d = hashlib.sha256(raw).hexdigest()
        self.image_sizes[d] = size
        self._valid_urls[url] = d
        return d

    def _parse(self, body: dict[str, Any]) -> dict[str, Any]:
        texts, images = [], []
        for message in body["messages"]:
            content = message["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for part in parts:
                if part["type"] == "text":
                    texts.append(part["text"])
                elif part["type"] == "image_url":
                    images.append(self._image(part["image_url"]["url"]))
                else:
                    raise ValueError(f"unknown content part {part['type']!r}")
        settings = {k: body.get(k) for k in ("model", "max_tokens", "temperature", "top_p")}
        key = digest(json.dumps([texts, images, settings]))
        return {"key": key, "texts": texts, "images": images, "settings": settings, "time": time.monotonic()}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            self.rejected["auth"] += 1
            return _error(401, "invalid_api_key", "Incorrect API key provided")
        try:
            info = self._parse(await request.json())
        except (ValueError, KeyError, TypeError, OSError) as e:  # OSError: an image that does not decode
            self.rejected["bad_request"] += 1
            return _error(400, "invalid_request", f"bad request: {e}")
        self.requests.append(info)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            for fault in self.faults:
                if fault.match(info) and (fault.times is None or fault.counts[info["key"]] < fault.times):
                    fault.counts[info["key"]] += 1
                    info["fault"] = fault.kind
                    return await self._fault(request, fault, info)
            return _completion(self._answer(info))
        finally:
            self.in_flight -= 1

    def _answer(self, info: dict[str, Any]) -> str:
        text = "\n".join(info["texts"])
        answer, labels = _JUDGE_ANSWER.search(text), _JUDGE_LABELS.search(text)
        if answer and labels:
            return judge_label(answer.group(1), [x.strip() for x in labels.group(1).split(",")])
        if "[End of Assistant 2]" in text:
            return llava_bench_scores(text)
        return model_answer(info["texts"], info["images"])

    async def _fault(self, request: web.Request, fault: Fault, info: dict[str, Any]) -> web.StreamResponse:
        kind = fault.kind
        if kind == "rate_limit":
            return _error(429, "rate_limit_exceeded", "Rate limit reached", {"Retry-After": f"{fault.retry_after:g}"})
        if kind in ("server_error", "bad_gateway", "unavailable"):
            status = {"server_error": 500, "bad_gateway": 502, "unavailable": 503}[kind]
            return _error(status, "server_error", "The server had an error")
        if kind == "echo_key":  # a careless server that repeats the key in its error text
            return _error(500, "server_error", f"upstream rejected Authorization: Bearer {self.key}")
        if kind == "slow":
            await asyncio.sleep(fault.delay)
            return _completion(self._answer(info))
        if kind == "malformed":
            return web.Response(status=200, text='{"choices": [{"message": ', content_type="application/json")
        if kind == "disconnect":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if kind == "content_filter":
            return _error(400, "content_filter", "The response was filtered due to the prompt triggering "
                                                 "the content management policy.")
        if kind == "filtered_finish":
            return _completion("", finish_reason="content_filter")
        return _completion("I think it might be fine, hard to say.")  # garbage: not a judge label


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": code, "code": code}}, status=status,
                             headers=headers)


def _completion(text: str, finish_reason: str = "stop") -> web.Response:
    return web.json_response({
        "id": "chatcmpl-fake", "object": "chat.completion", "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--key", default="sk-test", help="the bearer key to accept")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    with FakeOpenAI(key=args.key, latency=args.latency, port=args.port) as server:
        print(f"URL {server.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
