"""Context questions: one safe-context and one unsafe-context question per concept.

The file is the authors' ``generated_questions.json`` (a JSON list of ``{"category", "unsafe concept",
"image_fname", "output"}``, ``output`` = ``"Safe Context: ...\\n\\nUnsafe Context: ..."``) or the one
``python -m uc_tasks.data.synth`` writes beside a replica. It is chosen by ``UNSAFECONCEPTS_CONTEXT_QUESTIONS``
(a path or an http(s) URL); unset, the data folder's own ``generated_questions.json`` is used.
"""

from __future__ import annotations

import json
import re
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

from uc_tasks import settings
from uc_tasks.data.sources import DataError, DataSource
from uc_tasks.data.taxonomy import load_taxonomy

ENV_QUESTIONS = settings.env_name("context_questions")
QUESTIONS_FILE = "generated_questions.json"
CONTEXTS = ("safe", "unsafe")
_SPLIT = re.compile(r"^\s*Safe Context:\s*(?P<safe>.+?)\s*Unsafe Context:\s*(?P<unsafe>.+?)\s*$", re.S)


def resolve_questions(source: DataSource) -> str:
    """Where the questions come from: the variable, else the data folder's file; never guessed."""
    spec = settings.current().context_questions
    if spec:
        return spec
    # a folder holds the file; a parquet replica (``synth --parquet``) has it beside the parquet
    beside = Path(source.location) if source.kind == "folder" else Path(source.location).parent
    if source.kind in ("folder", "parquet") and (beside / QUESTIONS_FILE).is_file():
        return str(beside / QUESTIONS_FILE)
    raise DataError(
        f"no context questions: set {ENV_QUESTIONS} to the authors' {QUESTIONS_FILE} (a path or URL), "
        f"or put it beside the data (`python -m uc_tasks.synth` writes one)"
    )


def _read(spec: str) -> Any:
    try:
        if re.match(r"https?://", spec):
            with urllib.request.urlopen(spec, timeout=30) as r:  # noqa: S310 (explicit user choice)
                return json.loads(r.read().decode("utf-8"))
        return json.loads(Path(spec).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{ENV_QUESTIONS}={spec}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{spec}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except OSError as e:
        raise DataError(f"{spec}: could not be read ({e}); check the path or URL") from None


@lru_cache(maxsize=4)
def load_questions(spec: str) -> dict[str, dict[str, str]]:
    """``{concept: {"safe": question, "unsafe": question}}`` for all 75 concepts, validated."""
    raw = _read(spec)
    if not isinstance(raw, list):
        raise DataError(f"{spec}: expected a JSON list of {{category, unsafe concept, output}} records")
    tax = load_taxonomy()
    out: dict[str, dict[str, str]] = {}
    for i, rec in enumerate(raw):
        concept = rec.get("unsafe concept") if isinstance(rec, dict) else None
        if concept not in tax.concept_category:
            raise DataError(f"{spec}: record {i}: concept {concept!r} is not one of the 75 UnsafeConcepts")
        m = _SPLIT.match(str(rec.get("output", "")))
        if not m:
            raise DataError(
                f"{spec}: concept {concept!r}: 'output' must hold 'Safe Context: <question>' followed by "
                "'Unsafe Context: <question>'"
            )
        if concept in out:
            raise DataError(f"{spec}: concept {concept!r} appears twice")
        out[concept] = {"safe": m["safe"], "unsafe": m["unsafe"]}
    missing = [c for c in tax.concepts if c not in out]
    if missing:
        raise DataError(f"{spec}: no questions for {len(missing)} concept(s), e.g. {missing[0]!r}")
    return out
