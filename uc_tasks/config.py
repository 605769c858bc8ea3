"""Command-line configs: a dataclass with help text on every field becomes ``--flags`` plus ``--config file.yaml``.

Values come, in increasing priority, from the dataclass defaults, the YAML file, then the flags.
Unknown YAML keys and values of the wrong type stop with one line that says what to fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def help_field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with its ``--help`` text (every config field must have one)."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(element type, is_list) of an annotation such as ``int``, ``str | None`` or ``list[str]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return typing.get_args(tp)[0], True
    return tp, False


def _coerce(name: str, value: Any, tp: Any) -> Any:
    base, is_list = _base_type(tp)
    if value is None:
        return None
    if is_list:
        if not isinstance(value, list):
            value = [value]
        return [_coerce(name, v, base) for v in value]
    if base is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes"):
            return True
        if str(value).lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    try:
        return base(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {getattr(base, '__name__', base)}, got {value!r}") from None


def parse_config(cls: type[C], argv: list[str] | None, description: str, positional: str | None = None) -> C:
    """Build ``cls`` from ``--config file.yaml`` and ``--field value`` flags (``--field-name`` also works);
    the list field named ``positional`` also takes the bare arguments (``cmd A B --flag``)."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file with any of the fields below (flags override it)")
    for f in fields:
        if "help" not in f.metadata:
            raise TypeError(f"config field {cls.__name__}.{f.name} has no help text")
        base, is_list = _base_type(hints[f.name])
        flags = [f"--{f.name}", f"--{f.name.replace('_', '-')}"] if "_" in f.name else [f"--{f.name}"]
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": f.metadata["help"]}
        if is_list:
            kwargs["nargs"] = "+"
        if f.name == positional:
            parser.add_argument(f"{f.name}_positional", nargs="*", default=argparse.SUPPRESS,
                                metavar=f.name.upper(), help=f"{f.metadata['help']} (also --{f.name})")
        parser.add_argument(*flags, **kwargs)
    args = vars(parser.parse_args(argv))
    if positional and f"{positional}_positional" in args:
        args[positional] = args.pop(f"{positional}_positional") + list(args.get(positional, []))
    values: dict[str, Any] = {}
    if args.get("config"):
        path = Path(args.pop("config"))
        if not path.is_file():
            parser.error(f"--config {path}: no such file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            parser.error(f"--config {path}: expected a mapping of field: value")
        unknown = sorted(set(loaded) - {f.name for f in fields})
        if unknown:
            parser.error(f"--config {path}: unknown field(s) {', '.join(unknown)}; see --help")
        values.update(loaded)
    args.pop("config", None)
    values.update(args)
    try:
        coerced = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
        return cls(**coerced)
    except ValueError as e:
        parser.error(str(e))
    raise AssertionError("unreachable")
