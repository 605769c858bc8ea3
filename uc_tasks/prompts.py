"""Render the prompt templates under prompts/ (the only place prompt text lives).

Rendering is strict: a missing variable raises instead of producing a silently wrong prompt.
The prompt version (prompts/VERSION) and a hash of all template files are recorded in results.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

_REPO_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def prompts_dir() -> Path:
    """The template folder: the checkout's prompts/ (editable install) or the installed copy."""
    if (_REPO_PROMPTS / "VERSION").is_file():
        return _REPO_PROMPTS
    installed = Path(str(resources.files("uc_prompts")))
    if (installed / "VERSION").is_file():
        return installed
    raise FileNotFoundError(
        f"prompt templates not found in {_REPO_PROMPTS} or the installed package 'uc_prompts'; "
        "reinstall the package with `pip install -e .`"
    )


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(prompts_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=256)
def _template(name: str) -> jinja2.Template:
    try:
        return _env().get_template(f"{name}.jinja")
    except jinja2.TemplateNotFound:
        raise ValueError(f"no prompt template {name!r}: expected {prompts_dir() / (name + '.jinja')}") from None


def render(name: str, **variables: object) -> str:
    """Render template ``name`` (path under prompts/ without .jinja); fails on a missing variable."""
    try:
        return _template(name).render(**variables)
    except jinja2.UndefinedError as e:
        raise ValueError(f"prompt template {name!r}: {e}; pass it to render()") from None


OWN_VERSIONS = ("judge", "targets", "general")
"""Template folders versioned apart from the benchmark's prompts (each has its own VERSION); ``general``: the
generated yes/no stand-in of the general-ability benchmarks (``uc_tasks.lmms.general``)."""


@lru_cache(maxsize=8)
def template_version(folder: str) -> dict[str, str]:
    """Version (``prompts/<folder>/VERSION``) and content hash of the templates in one folder."""
    root = prompts_dir() / folder
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.jinja")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return {"version": (root / "VERSION").read_text().strip(), "sha256": digest.hexdigest()[:16]}


@lru_cache(maxsize=1)
def prompt_version() -> dict[str, str]:
    """Version string and content hash of every benchmark template (changing one changes the hash).

    Judge prompts (prompts/judge/) belong to the judge scorer, which versions them itself; training targets
    (prompts/targets/) belong to uc_align (``template_version("targets")``); the general yes/no stand-in's
    (prompts/general/) to that task (``template_version("general")``)."""
    root = prompts_dir()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.jinja")):
        if path.relative_to(root).parts[0] in OWN_VERSIONS:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return {"version": (root / "VERSION").read_text().strip(), "sha256": digest.hexdigest()[:16]}
