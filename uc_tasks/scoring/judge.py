"""The LLM-judge scorer: an OpenAI-compatible model reads each answer into one label.

Configured from the environment (``JudgeScorer.from_env``): UNSAFECONCEPTS_JUDGE_BASE_URL,
UNSAFECONCEPTS_JUDGE_MODEL, UNSAFECONCEPTS_JUDGE_API_KEY_ENV (the variable holding the key, default
OPENAI_API_KEY), UNSAFECONCEPTS_JUDGE_CACHE (default ~/.cache/unsafeconcepts/judge) and
UNSAFECONCEPTS_JUDGE_CONCURRENCY (default 32). A batch of answers is judged concurrently at
temperature 0 with the versioned prompts in prompts/judge/. The reply must be exactly one label; an
unreadable reply is asked again once, then the run stops. Readings are cached on disk (keyed by judge
model, endpoint host, judge prompt version and hash, task kind, answer and options) and in memory, so
a second run makes no calls. Nothing falls back to another scorer: a judge that cannot run stops it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from uc_tasks import settings
from uc_tasks.errors import one_line
from uc_tasks.failures import parse_failure
from uc_tasks.http.cache import JsonlCache, cache_file
from uc_tasks.http.client import (
    DEFAULT_BACKOFF_S,
    DEFAULT_KEY_ENV,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    ChatClient,
    public_url,
)
from uc_tasks.prompts import prompts_dir, render
from uc_tasks.scoring.base import ALIGNMENT_LABELS, LETTERS, NA, PERCEPTION_LABELS, Reading

ENV_BASE_URL = settings.env_name("judge_base_url")
ENV_MODEL = settings.env_name("judge_model")
ENV_KEY_ENV = settings.env_name("judge_api_key_env")
ENV_CACHE = settings.env_name("judge_cache")
ENV_CONCURRENCY = settings.env_name("judge_concurrency")
DEFAULT_CACHE_DIR = "~/.cache/unsafeconcepts/judge"
DEFAULT_CONCURRENCY = int(settings.Settings().judge_concurrency)
TEMPERATURE = 0.0
MAX_TOKENS = 8
_LABELS = {"alignment": ALIGNMENT_LABELS, "perception": PERCEPTION_LABELS}
_NA_SPELLINGS = {"na", "n/a"}


class JudgeError(RuntimeError):
    """The judge could not read an answer (no reply, or an unreadable one twice): the run stops."""


@lru_cache(maxsize=1)
def judge_prompt_version() -> dict[str, str]:
    """Version (prompts/judge/VERSION) and content hash of the judge templates."""
    root = prompts_dir() / "judge"
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.jinja")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"version": (root / "VERSION").read_text().strip(), "sha256": digest.hexdigest()[:16]}


def parse_label(reply: str, labels: Sequence[str]) -> str | None:
    """The label ``reply`` consists of (case, surrounding quotes, markup and a final period aside), else None."""
    text = reply.strip().strip("`*\"'").strip().rstrip(".").strip().lower()
    if text in _NA_SPELLINGS and NA in labels:
        return NA
    return next((label for label in labels if text == label.lower()), None)


class JudgeScorer:
    """Reads answers with an LLM judge behind an OpenAI-compatible endpoint."""

    name = "judge"
    version = "1"

    def __init__(self, model: str, base_url: str, *, api_key_env: str = DEFAULT_KEY_ENV,
                 cache_dir: str | Path = DEFAULT_CACHE_DIR, concurrency: int = DEFAULT_CONCURRENCY,
                 max_retries: int = DEFAULT_MAX_RETRIES, timeout: float = DEFAULT_TIMEOUT_S,
                 backoff: float = DEFAULT_BACKOFF_S) -> None:
        self.model = model
        self.client = ChatClient(base_url, api_key_env=api_key_env, concurrency=concurrency,
                                 max_retries=max_retries, timeout=timeout, backoff=backoff)
        self.client.check_reachable()
        self.prompts = judge_prompt_version()
        self.store = JsonlCache(cache_file(cache_dir, model), background=True)
        self._memo: dict[str, Reading] = {}

    @classmethod
    def from_env(cls) -> JudgeScorer:
        """The judge the UNSAFECONCEPTS_JUDGE_* variables describe; a missing one raises ValueError."""
        now = settings.current()
        needed = ((ENV_BASE_URL, now.judge_base_url, "https://api.openai.com/v1"),
                  (ENV_MODEL, now.judge_model, "gpt-4o-mini"))
        missing = [f"export {var}=<e.g. {example}>" for var, value, example in needed if not value]
        if not os.environ.get(now.judge_api_key_env, "").strip():
            missing.append(f"export {now.judge_api_key_env}=<key> (or name another variable in {ENV_KEY_ENV})")
        if missing:
            raise ValueError("the judge scorer is missing settings: " + "; ".join(missing))
        raw = now.judge_concurrency
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{ENV_CONCURRENCY}={raw!r} is not a positive integer; set e.g. 32")
        return cls(now.judge_model, now.judge_base_url, api_key_env=now.judge_api_key_env,
                   cache_dir=now.judge_cache or DEFAULT_CACHE_DIR, concurrency=int(raw))

    def settings(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "model": self.model,
                "base_url": self.client.public_base_url, "prompt_version": self.prompts["version"],
                "prompt_sha256": self.prompts["sha256"], "temperature": TEMPERATURE,
                "concurrency": self.client.concurrency}

    # -- the Scorer protocol ---------------------------------------------------------------------
    def read_alignment(self, answers: Sequence[str]) -> list[Reading]:
        return self._read("alignment", list(answers), [None] * len(answers))

    def read_perception(self, answers: Sequence[str], options: Sequence[Mapping[str, str]]) -> list[Reading]:
        if len(answers) != len(options):
            raise ValueError(f"{len(answers)} answers but {len(options)} option sets")
        return self._read("perception", list(answers), [dict(o) for o in options])

    # -- reading ---------------------------------------------------------------------------------
    def _key(self, kind: str, answer: str, options: dict[str, str] | None) -> str:
        material = [self.model, self.client.host, self.prompts["version"], self.prompts["sha256"], kind, answer,
                    sorted(options.items()) if options is not None else None]
        return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()

    def _payload(self, kind: str, answer: str, options: dict[str, str] | None) -> dict[str, Any]:
        if kind == "perception":
            assert options is not None
            missing = [letter for letter in LETTERS if letter not in options]
            if missing:
                raise ValueError(f"perception options lack {', '.join(missing)}: {options}")
            prompt = render("judge/perception", answer=answer, options=[(k, options[k]) for k in LETTERS])
        else:
            prompt = render("judge/alignment", answer=answer)
        return {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": TEMPERATURE, "max_tokens": MAX_TOKENS}

    def _read(self, kind: str, answers: list[str], options: list[dict[str, str] | None]) -> list[Reading]:
        out: list[Reading | None] = [None] * len(answers)
        pending: dict[str, list[int]] = {}
        for i, (answer, opts) in enumerate(zip(answers, options, strict=True)):
            failure = parse_failure(answer)
            if failure is not None:  # a request without an answer: nothing to judge (the task excludes it)
                out[i] = Reading(NA, f"no answer to judge ({failure.kind})")
                continue
            key = self._key(kind, answer, opts)
            reading = self._memo.get(key)
            if reading is None and (record := self.store.get(key)) is not None:
                reading = self._memo[key] = Reading(record["label"], record["reason"])
            if reading is None:
                pending.setdefault(key, []).append(i)
            else:
                out[i] = reading
        if pending:
            firsts = {key: idx[0] for key, idx in pending.items()}
            fresh = self._ask(kind, {k: self._payload(kind, answers[i], options[i]) for k, i in firsts.items()})
            for key, reading in fresh.items():
                self.store.put(key, {"label": reading.label, "reason": reading.reason})
                self._memo[key] = reading
                for i in pending[key]:
                    out[i] = reading
            self.store.sync()
        return [r for r in out if r is not None]

    def _ask(self, kind: str, payloads: dict[str, dict[str, Any]]) -> dict[str, Reading]:
        """Judge every payload; an unreadable reply is asked once more, then stops the run."""
        labels = _LABELS[kind]
        readings: dict[str, Reading] = {}
        todo = dict(payloads)
        for attempt in (1, 2):
            keys = list(todo)
            results = self.client.complete([todo[k] for k in keys])
            unreadable = {}
            for key, result in zip(keys, results, strict=True):
                if result.failure is not None or result.text is None:
                    raise JudgeError(f"judge {self.model} at {public_url(self.client.base_url)} gave no reading "
                                     f"({result.failure}: {result.detail}); the run stops rather than guess")
                label = parse_label(result.text, labels)
                if label is None:
                    unreadable[key] = result.text
                else:
                    readings[key] = Reading(label, f"judge {self.model}: {one_line(result.text, 40)}")
            if not unreadable:
                return readings
            if attempt == 2:
                reply = one_line(next(iter(unreadable.values())), 80)
                raise JudgeError(f"judge {self.model} replied {reply!r}, not one of {', '.join(labels)}, twice "
                                 f"({len(unreadable)} answer(s)); use a judge model that follows the prompt "
                                 "in prompts/judge/")
            todo = {k: payloads[k] for k in unreadable}
        return readings
