"""The one JSON-lines reader: each line one JSON value, errors named by file and line number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_FIX = "each line must be one JSON object"


def iter_jsonl(
    text: str | bytes, where: str | Path, error: type[Exception] = ValueError, fix: str = DEFAULT_FIX
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of ``text``; a line that is not JSON raises
    ``error("<where>:<n>: not valid JSON (<why>); <fix>")``."""
    import json

    lines = text.splitlines()
    for n, line in enumerate(lines, start=1):
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
