"""An async OpenAI-compatible chat-completion client, shared by the API backend and the LLM judge.

- Bounded concurrency over one connection pool; answers come back in request order.
- Retries with exponential backoff and jitter on 408/409/429/5xx, timeouts, connection errors and
  malformed bodies; a 429 waits at least its ``Retry-After``. A content filter (HTTP 400 with code
  ``content_filter``, or ``finish_reason == "content_filter"``) is not retried: it is a provider block.
- What no retry can fix (a refused key, a wrong URL or model, an exhausted quota, an endpoint that
  never answered) raises ``ApiError`` with one line: the run stops.
- An append-only JSON-lines cache: one line per finished request, flushed at once, keyed by the
  sha256 of the endpoint host and the payload (images replaced by their digest). A torn last line
  (a killed run) is dropped on load, so a rerun sends only the requests still missing.
- The API key is read from an environment variable only, sent in a header and scrubbed from every
  error text; it is never part of a cache key or record.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import os
import random
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from uc_tasks.errors import one_line
from uc_tasks.failures import ERROR, PROVIDER_BLOCK
from uc_tasks.http.cache import JsonlCache, request_key

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_CONCURRENCY = 64
DEFAULT_MAX_RETRIES = 5
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_BACKOFF_S = 0.5
"""The client's defaults, shared by the API backend and the judge (which asks fewer at once)."""
REDACTED = "[redacted]"
CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})
MAX_RETRY_AFTER_S = 300.0


class ApiError(RuntimeError):
    """A failure that no retry fixes (refused key, wrong URL or model, unreachable endpoint); one line."""


def api_key_from_env(env_name: str = DEFAULT_KEY_ENV) -> str:
    """The key in ``$env_name``; a missing or empty variable raises ValueError saying what to set."""
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise ValueError(f"no API key: environment variable {env_name} is empty or not set; export {env_name}=<key>")
    return key


def endpoint_host(base_url: str) -> str:
    """The host of ``base_url`` (no scheme, credentials, port or path): the endpoint part of cache keys."""
    host = urlsplit(base_url).hostname
    if not host:
        raise ValueError(f"base_url {base_url!r} is not an http(s) URL; pass e.g. https://api.openai.com/v1")
    return host


def public_url(base_url: str) -> str:
    """``base_url`` without credentials, query or fragment: safe to record in results."""
    parts = urlsplit(base_url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


@dataclass(frozen=True)
class ChatResult:
    """One request's outcome: the answer text, or no text and the failure kind (answers.FAILURE_KINDS)."""

    text: str | None
    failure: str | None = None
    detail: str = ""
    cached: bool = False


@dataclass
class ClientStats:
    """Counters over the client's life: requests asked, cache hits, HTTP attempts, retries, failures."""

    requests: int = 0
    cache_hits: int = 0
    sent: int = 0
    answered: int = 0
    retries: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "cache_hits": self.cache_hits, "sent": self.sent,
                "answered": self.answered, "retries": dict(sorted(self.retries.items())),
                "failures": dict(sorted(self.failures.items()))}


_LIMITS = {"concurrency": 1, "num_concurrent": 1, "max_retries": 0}  # integers, with their minimum
_SECONDS = {"timeout", "backoff", "retry_backoff", "max_backoff"}  # numbers of seconds (timeout > 0)


def check_settings(**settings: object) -> None:
    """Raise ValueError (one line, naming the setting) for a bad concurrency, retry count or duration."""
    for name, value in settings.items():
        if name in _LIMITS:
            if not isinstance(value, int) or isinstance(value, bool) or value < _LIMITS[name]:
                raise ValueError(f"{name} must be an integer >= {_LIMITS[name]}, got {value!r}")
        elif name in _SECONDS:
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or (
                    name == "timeout" and value == 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        else:
            raise ValueError(f"unknown setting {name!r}")


class _Retry(Exception):
    """A transient failure of one attempt: ``cause`` names it in the counters."""

    def __init__(self, cause: str, detail: str, wait_s: float | None = None) -> None:
        super().__init__(detail)
        self.cause, self.detail, self.wait_s = cause, detail, wait_s


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _message_text(message: Any) -> str | None:
    """The text of a chat message (string or list of text parts); a structured refusal counts as text."""
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        content = "".join(parts) if parts else None
    if content is None and isinstance(message.get("refusal"), str):
        return message["refusal"]
    return content if isinstance(content, str) else None


class _Loop:
    """One event loop in a daemon thread: the connection pool survives across ``complete`` calls and
    ``complete`` works from synchronous code and from inside a running loop alike."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="uc-api-client", daemon=True).start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class ChatClient:
    """Concurrent chat completions against ``{base_url}/chat/completions``.

    ``base_url`` may name several servers of the same model, separated by ``|`` (data parallel over
    servers): requests are spread over them in turn, ``concurrency`` in flight per server; the cache key
    does not depend on which server answered."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str = DEFAULT_KEY_ENV,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT_S,
        backoff: float = DEFAULT_BACKOFF_S,
        max_backoff: float = 30.0,
        cache_path: Path | None = None,
    ) -> None:
        check_settings(concurrency=concurrency, max_retries=max_retries, timeout=timeout, backoff=backoff,
                       max_backoff=max_backoff)
        self.base_urls = [u.strip().rstrip("/") for u in str(base_url).split("|") if u.strip()]
        if not self.base_urls:
            raise ValueError("base_url is empty; pass e.g. https://api.openai.com/v1 (several: url1|url2)")
        self.base_url = self.base_urls[0]
        self.host = "|".join(sorted({endpoint_host(u) for u in self.base_urls}))
        self.urls = [u + "/chat/completions" for u in self.base_urls]
        self.url = self.urls[0]
        self.api_key_env = api_key_env
        self._key = api_key_from_env(api_key_env)
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, float(timeout)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.cache = JsonlCache(cache_path, background=True) if cache_path is not None else None
        self._proxies = [_proxy_for(u) for u in self.urls]
        self.stats = ClientStats()
        self._digests: dict[str, str] = {}
        self._loop: _Loop | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def public_base_url(self) -> str:
        """Every server's URL without credentials (``|``-separated): safe to log and record."""
        return "|".join(public_url(u) for u in self.base_urls)

    # -- key hygiene -------------------------------------------------------------------------
    def scrub(self, text: object) -> str:
        """``text`` with the API key replaced by a marker."""
        text = str(text)
        return text.replace(self._key, REDACTED) if self._key in text else text

    # -- public API --------------------------------------------------------------------------
    def complete(self, payloads: Sequence[dict[str, Any]], seen: Counter | None = None) -> list[ChatResult]:
        """Send every payload not yet cached, concurrently; results in payload order. Pass the same
        ``seen`` to calls that are windows of one run, so that repeats are counted across them."""
        if self._loop is None:
            self._loop = _Loop()
        return self._loop.run(self.acomplete(payloads, seen))

    def forget_images(self) -> None:
        """Drop the image digests kept for cache keys (they hold the encoded images)."""
        self._digests.clear()

    def check_reachable(self) -> None:
        """One quick request to ``{base_url}/models``: raises ApiError if the endpoint cannot be reached
        or refuses the key. Any other answer (even 404: not every server lists models) passes."""
        if self._loop is None:
            self._loop = _Loop()
        self._loop.run(self._check())

    def keys(self, payloads: Sequence[dict[str, Any]], seen: Counter | None = None) -> list[str]:
        """Cache keys; the n-th repeat of an identical payload gets its own key (repeated sampling)."""
        seen = Counter() if seen is None else seen
        out = []
        for p in payloads:
            k = request_key(self.host, p, self._digests)
            seen[k] += 1
            out.append(k if seen[k] == 1 else hashlib.sha256(f"{k}#{seen[k]}".encode()).hexdigest())
        return out

    async def acomplete(self, payloads: Sequence[dict[str, Any]], seen: Counter | None = None) -> list[ChatResult]:
        keys = self.keys(payloads, seen)
        results: list[ChatResult | None] = [None] * len(payloads)
        todo = []
        self.stats.requests += len(payloads)
        for i, k in enumerate(keys):
            record = self.cache.get(k) if self.cache is not None else None
            if record is None:
                todo.append(i)
                continue
            self.stats.cache_hits += 1
            results[i] = ChatResult(record.get("text"), record.get("failure"), record.get("detail", ""), cached=True)
        if todo:
            http = self._client()
            gates = [asyncio.Semaphore(self.concurrency) for _ in self.urls]

            async def one(n: int, i: int) -> None:
                server = n % len(self.urls)  # spread over the servers in turn
                async with gates[server]:
                    result = await self._complete(http, payloads[i], server)
                if self.cache is not None and result.failure != ERROR:  # errors are retried on a rerun
                    self.cache.put(keys[i], {"text": result.text, "failure": result.failure, "detail": result.detail})
                results[i] = result

            tasks = [asyncio.ensure_future(one(n, i)) for n, i in enumerate(todo)]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                if self.cache is not None:
                    self.cache.sync()
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self._loop is not None and self._http is not None:
            self._loop.run(self._http.close())
            self._http = None
        if self.cache is not None:
            self.cache.close()

    # -- one request -------------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        """The connection pool. aiohttp: at 64 concurrent requests httpx 0.28 ran ~10x below the ideal rate
        here. The proxy is looked up once (``trust_env`` would do it in a thread for every request)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._key}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=self.concurrency * len(self.urls)),
            )
            if self._loop is not None:
                atexit.register(self.close)
        return self._http

    async def _check(self) -> None:
        for base_url, proxy in zip(self.base_urls, self._proxies, strict=True):
            try:
                async with self._client().get(base_url + "/models", proxy=proxy,
                                              timeout=aiohttp.ClientTimeout(total=min(self.timeout, 15.0))) as resp:
                    status, body = resp.status, await resp.read()
            except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as e:
                why = self.scrub(one_line(str(e)) or type(e).__name__)
                raise ApiError(f"cannot reach {public_url(base_url)} ({why}); "
                               "check base_url and that the server is running") from None
            if status in (401, 403):
                raise ApiError(self._refused(status, body))

    async def _complete(self, http: aiohttp.ClientSession, payload: dict[str, Any], server: int = 0) -> ChatResult:
        attempts = self.max_retries + 1
        last: _Retry | None = None
        for attempt in range(attempts):
            self.stats.sent += 1
            try:
                try:
                    async with http.post(self.urls[server], json=payload, proxy=self._proxies[server]) as resp:
                        status, headers, body = resp.status, resp.headers, await resp.read()
                except (TimeoutError, asyncio.TimeoutError):
                    raise _Retry("timeout", f"no response within {self.timeout:g}s") from None
                except aiohttp.ClientError as e:
                    raise _Retry("connection", f"{type(e).__name__}: {one_line(str(e))}") from None
                result = self._read(status, headers, body)
            except _Retry as r:
                last = r
                if attempt + 1 < attempts:
                    self.stats.retries[r.cause] += 1
                    await asyncio.sleep(self._wait(attempt, r.wait_s))
                continue
            if result.failure is None:
                self.stats.answered += 1
            else:
                self.stats.failures[result.failure] += 1
            return result
        assert last is not None
        if last.cause == "connection" and self.stats.answered == 0:
            raise ApiError(f"cannot reach {public_url(self.base_urls[server])} after {attempts} attempts "
                           f"({self.scrub(last.detail)}); check base_url and that the server is running")
        self.stats.failures[ERROR] += 1
        return ChatResult(None, ERROR, self.scrub(f"no answer after {attempts} attempts: {last.detail}"))

    def _wait(self, attempt: int, asked: float | None) -> float:
        if asked is not None:  # honour Retry-After, plus a little jitter so waiters do not return at once
            return min(asked, MAX_RETRY_AFTER_S) * random.uniform(1.0, 1.1)
        return min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def _error_of(self, body: bytes) -> tuple[str, str]:
        """(code, one-line message) of an error response, scrubbed of the key."""
        try:
            err = json.loads(body).get("error", {})
            err = err if isinstance(err, dict) else {"message": err}
            code, message = str(err.get("code") or err.get("type") or ""), str(err.get("message") or "")
        except (ValueError, AttributeError):
            code, message = "", body.decode("utf-8", "replace")
        return self.scrub(code), self.scrub(one_line(message, 200))

    def _refused(self, status: int, body: bytes) -> str:
        _, message = self._error_of(body)
        return (f"HTTP {status} from {public_url(self.base_url)}: the key in ${self.api_key_env} was "
                f"refused ({message}); export a valid key in {self.api_key_env}")

    def _read(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatResult:
        if status == 200:
            try:
                choice = json.loads(body)["choices"][0]
                finish = choice.get("finish_reason")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                text = self.scrub(one_line(body.decode("utf-8", "replace"), 120))
                raise _Retry("malformed", f"malformed response body: {text}") from None
            if finish == "content_filter":
                return ChatResult(None, PROVIDER_BLOCK, "the provider's content filter stopped the answer "
                                                        "(finish_reason content_filter)")
            text = _message_text(choice.get("message"))
            if text is None:
                raise _Retry("malformed", "response without message text")
            return ChatResult(self.scrub(text))
        code, message = self._error_of(body)
        if status == 400 and code in CONTENT_FILTER_CODES:
            return ChatResult(None, PROVIDER_BLOCK, f"HTTP 400 {code}: {message}")
        if status in (401, 403):
            raise ApiError(self._refused(status, body))
        if status == 404:
            raise ApiError(f"HTTP 404 from {public_url(self.url)}: {message}; check base_url and the model name")
        if status == 429:
            if code == "insufficient_quota":
                raise ApiError(f"HTTP 429 insufficient_quota from {public_url(self.base_url)}: {message}; "
                               "add credit or use another key")
            raise _Retry("rate_limit", f"HTTP 429: {message}", retry_after_seconds(headers))
        if status in (408, 409) or status >= 500:
            raise _Retry("server_error", f"HTTP {status}: {message}")
        return ChatResult(None, ERROR, f"HTTP {status} {code}: {message}".replace("  ", " "))


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTP(S)_PROXY, NO_PROXY), or None."""
    host = urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(urlsplit(url).scheme)
