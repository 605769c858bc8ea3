"""The on-disk caches of the API client: request keys, and an append-only JSON-lines store.

Keys are the sha256 of everything that determines an answer (endpoint host, model, messages with
images replaced by their digest, generation settings), never of the API key.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import queue
import re
import threading
from pathlib import Path
from typing import Any

from uc_tasks.errors import one_line
from uc_tasks.jsonl import iter_jsonl


def _digest_images(value: Any, memo: dict[str, str]) -> Any:
    """``value`` with every data URL replaced by ``sha256:<digest>`` (memoised per URL string)."""
    if isinstance(value, str):
        if not value.startswith("data:"):
            return value
        digest = memo.get(value)
        if digest is None:
            digest = memo[value] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
        return digest
    if isinstance(value, dict):
        return {k: _digest_images(v, memo) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_digest_images(v, memo) for v in value]
    return value


def request_key(scope: str, payload: dict[str, Any], memo: dict[str, str] | None = None) -> str:
    """sha256 of everything that determines the answer: endpoint host, model, messages, settings."""
    canonical = json.dumps(
        {"scope": scope, "payload": _digest_images(payload, {} if memo is None else memo)},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class JsonlCache:
    """Append-only JSON-lines store ``{"k": key, ...}``; one line per record, flushed at once.

    A torn last line (no newline: the writer was killed mid-write) is dropped and cut off on load, so
    later appends stay well-formed. Any other unreadable line stops with the file and line number.
    With ``background=True`` a writer thread does the writing (each line flushed as soon as it is
    taken), so that an event loop never waits on the disk; ``sync`` waits until all is written.
    """

    def __init__(self, path: Path, background: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.records: dict[str, dict[str, Any]] = {}
        self.torn = False
        self._fh = None
        self._queue: queue.Queue[str | None] | None = None
        self._writer: threading.Thread | None = None
        self._background = background
        self._error: Exception | None = None
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        fix = "it is not a cache record; delete the file to start afresh"
        for n, record in iter_jsonl(data[:end], self.path, fix=fix):
            if not isinstance(record, dict) or "k" not in record:
                raise ValueError(f"{self.path}:{n}: {fix}")
            self.records[record["k"]] = record
        if end < len(data):
            self.torn = True
            with open(self.path, "r+b") as fh:
                fh.truncate(end)

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        record = {"k": key, **record}
        line = json.dumps(record) + "\n"  # ASCII: even a lone surrogate in an answer writes safely
        self.records[key] = record
        if not self._background:
            self._write(line)
            return
        if self._queue is None:
            self._queue = queue.Queue()
            self._writer = threading.Thread(target=self._drain, args=(self._queue,), name="uc-cache-writer",
                                            daemon=True)
            self._writer.start()
            atexit.register(self.close)
        self._queue.put(line)

    def _write(self, text: str) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._fh.write(text)
        self._fh.flush()

    def _drain(self, q: queue.Queue[str | None]) -> None:
        while True:
            lines = [q.get()]
            while not q.empty():  # whatever else is waiting goes out in the same write
                lines.append(q.get_nowait())
            stop = None in lines
            try:
                if self._error is None:
                    self._write("".join(x for x in lines if x is not None))
            except Exception as e:  # noqa: BLE001 - reported by sync(), never a hung writer
                self._error = e
            for _ in lines:
                q.task_done()
            if stop:
                return

    def sync(self) -> None:
        """Wait until every record put so far is written and flushed; a failed write raises here."""
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            raise OSError(f"cannot write the cache file {self.path}: {one_line(str(self._error))}; "
                          "free disk space or choose another cache folder")

    def close(self) -> None:
        if self._queue is not None and self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._queue, self._writer = None, None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def cache_file(cache_dir: Path | str, model: str) -> Path:
    """The cache file of ``model`` in ``cache_dir`` (one file per model; keys hold the endpoint host)."""
    slug = _SLUG.sub("_", model).strip("._") or "model"
    return Path(cache_dir).expanduser() / f"{slug[:80]}-{hashlib.sha256(model.encode()).hexdigest()[:8]}.jsonl"
