"""What produced a result: package versions, git commit, prompt version (recorded in results)."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from uc_tasks.prompts import prompt_version

_PACKAGES = ("unsafeconcepts", "lmms_eval", "transformers", "torch", "datasets", "peft", "openai", "pillow",
             "accelerate", "aiohttp", "numpy")


def package_versions() -> dict[str, str | None]:
    return dict(_package_versions())


@lru_cache(maxsize=1)
def _package_versions() -> dict[str, str | None]:  # metadata lookups are slow; versions do not change
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any] | None:
    """Commit of the checkout this package runs from (None when installed from a wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(dirty)}


def provenance() -> dict[str, Any]:
    return {"prompts": prompt_version(), "packages": package_versions(), "git": git_commit()}
