"""The one JSON-lines reader: each line one JSON value, errors named by file and line number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_FIX = "each line must be one JSON object"


def json_lines(text: str | bytes) -> list[str] | list[bytes]:
    """The lines of a JSON-lines text, split at newlines only: ``str.splitlines`` also splits at U+0085, U+2028
    and other separators that ``json.dumps(..., ensure_ascii=False)`` leaves raw inside strings (an answer may
    hold them), which would cut one record in two."""
    if isinstance(text, bytes):
        return [line.removesuffix(b"\r") for line in text.split(b"\n")]
    return [line.removesuffix("\r") for line in text.split("\n")]


def iter_jsonl(
    text: str | bytes, where: str | Path, error: type[Exception] = ValueError, fix: str = DEFAULT_FIX
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of ``text``; a line that is not JSON raises
    ``error("<where>:<n>: not valid JSON (<why>); <fix>")``."""
    import json

    for n, line in enumerate(json_lines(text), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}:{n}: not valid JSON ({e.msg}); {fix}") from None


def read_jsonl(path: str | Path, error: type[Exception] = ValueError, fix: str = DEFAULT_FIX) -> list[tuple[int, Any]]:
    """``iter_jsonl`` of a UTF-8 file, as a list."""
    path = Path(path)
    return list(iter_jsonl(path.read_text(encoding="utf-8"), path, error, fix))
