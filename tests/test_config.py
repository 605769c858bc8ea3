"""Command configs: dataclass defaults < --config file.yaml < flags; bad values stop with one line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from uc_tasks.config import help_field, parse_config
from uc_tasks.rescore import RescoreConfig


@dataclass
class _Cfg:
    name: str = help_field("rule", "a name")
    seed: int = help_field(2024, "a seed")
    inputs: list[str] = help_field([], "some paths")
    compare: str | None = help_field(None, "optional")
    strict: bool = help_field(False, "a switch")


def test_yaml_then_flags(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("seed: 7\ninputs: [a, b]\nstrict: true\n")
    cfg = parse_config(_Cfg, ["--config", str(cfg_file), "--seed", "9"], "test")
    assert (cfg.name, cfg.seed, cfg.inputs, cfg.compare, cfg.strict) == ("rule", 9, ["a", "b"], None, True)
    assert parse_config(_Cfg, [], "test") == _Cfg()


@pytest.mark.parametrize(("text", "needle"), [
    ("sead: 7\n", "unknown field(s) sead"),
    ("seed: soon\n", "seed: expected int, got 'soon'"),
    ("strict: maybe\n", "strict: expected true or false"),
    ("- 1\n", "expected a mapping"),
])
def test_bad_config_stops_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, text: str,
                                        needle: str) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(text)
    with pytest.raises(SystemExit) as e:
        parse_config(_Cfg, ["--config", str(cfg_file)], "test")
    assert e.value.code == 2 and needle in capsys.readouterr().err


def test_every_field_needs_help() -> None:
    @dataclass
    class NoHelp:
        x: int = 1

    with pytest.raises(TypeError, match="NoHelp.x has no help text"):
        parse_config(NoHelp, [], "test")


def test_rescore_config_from_yaml(tmp_path: Path) -> None:
    cfg_file = tmp_path / "rescore.yaml"
    cfg_file.write_text("scorer: judge\ncompare: rule\ninputs: [run/]\n")
    cfg = parse_config(RescoreConfig, ["--config", str(cfg_file), "--seed", "1"], "rescore")
    assert (cfg.scorer, cfg.compare, cfg.inputs, cfg.seed) == ("judge", "rule", ["run/"], 1)
