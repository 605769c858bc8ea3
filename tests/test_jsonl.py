"""The one JSON-lines reader keeps a record whole when its strings hold line separators other than newline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uc_align.ppo.log import read_log
from uc_tasks.jsonl import json_lines, read_jsonl

ODD = ["a\u2028b", "c\x85d", "e\u2029f", "g\x0bh\x0ci\x1cj"]  # all of them str.splitlines() splits at


def test_separators_inside_strings_do_not_split_a_record(tmp_path: Path) -> None:
    rows = [{"answer": s, "n": i} for i, s in enumerate(ODD)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert len(path.read_text(encoding="utf-8").splitlines()) > len(rows)  # the trap is real
    assert [v for _, v in read_jsonl(path)] == rows
    assert read_log(path) == rows
    assert json_lines(b'{"a": 1}\r\n{"b": 2}\n') == [b'{"a": 1}', b'{"b": 2}', b""]


def test_a_broken_line_is_named_by_its_number(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": "x\u2028y"}\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows\.jsonl:2: not valid JSON"):
        read_jsonl(path)
