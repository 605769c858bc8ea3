"""Errors as one line: the text helper every message uses, and the exit that ends a run with it."""

from __future__ import annotations


def one_line(text: object, limit: int = 300) -> str:
    """``text`` (or an exception, as ``Type: message``) with its whitespace collapsed, cut at ``limit``."""
    if isinstance(text, BaseException):
        message = one_line(str(text), limit)
        return f"{type(text).__name__}: {message}" if message else type(text).__name__
    return " ".join(str(text).split())[:limit]


def stop(message: str) -> SystemExit:
    """The exception that ends an lmms-eval run with one line (lmms-eval catches Exception only, so a
    ``SystemExit`` is the one way to stop it with a non-zero exit and no stack trace)."""
    return SystemExit(f"unsafeconcepts: {message}")
