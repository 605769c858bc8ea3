"""``build``: the leaderboard pages from the accepted submissions and the paper's published numbers.

Ranked by image alignment (higher: more unsafe images judged unsafe); rows without an image score
(our notes of the paper give one only for LLaVA-7B) follow, by text alignment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uc_tasks.leaderboard.validate import Rejected, source_text, validate
from uc_tasks.report import numbers
from uc_tasks.report.page import cell, document, esc, figure, fmt, table, with_ci

REPORTED = "reported by the paper, not re-run"
PUBLISHED: tuple[dict[str, Any], ...] = tuple(
    {"name": name, "perception": p, "text": t, "image": i, "note": note}
    for name, p, t, i, note in (
        ("GPT-4V", 0.968, 0.915, None, ""),
        ("InternLM-XComposer2", 0.950, 0.930, None, ""),
        ("LLaVA-13B", 0.946, 0.951, None, ""),
        ("LLaVA-7B", 0.932, 0.945, 0.37, "image alignment about 0.37 (the paper's text)"),
        ("CogVLM", 0.895, 0.911, None, ""),
        ("InstructBLIP-13B", 0.609, 0.791, None, ""),
        ("Qwen2-VL-7B", 0.525, 0.813, None, ""),
        ("InstructBLIP-7B", 0.452, 0.852, None, ""),
    )
)
"""Qu, Backes, Zhang, USENIX Security 2025, overall, N/A excluded, as our reference notes give them
(PROTOCOL.md, "Published numbers"): perception and text alignment per model; image alignment only
as a range, 0.14 to 0.70 across these 8 VLMs, with LLaVA-7B's about 0.37, so the others are 'not given'."""


def _rows(results_dir: Path, verify: bool) -> list[dict[str, Any]]:
    rows = []
    for folder in sorted(p for p in (results_dir / "submissions").glob("*") if p.is_dir()):
        meta_file = folder / "submission.json"
        if not meta_file.is_file():
            raise RuntimeError(f"{folder}: no submission.json; add submissions with validate --accept NAME")
        meta = json.loads(meta_file.read_text())
        if verify:
            try:
                meta = {**meta, **{k: v for k, v in validate(str(folder)).items() if k not in ("model", "validated")}}
            except Rejected as e:
                raise RuntimeError(f"{folder} no longer validates ({e.reason}): {e}") from None
        rows.append({**meta, "reported": False})
    for p in PUBLISHED:
        rows.append({"name": p["name"], "model": p["name"], "reported": True, "note": p["note"],
                     "scores": {"perception": {"estimate": p["perception"]}, "text": {"estimate": p["text"]},
                                "image": {"estimate": p["image"]} if p["image"] is not None else None},
                     "modality_gap": {"estimate": p["text"] - p["image"]} if p["image"] is not None else None})
    image = [r for r in rows if (r["scores"].get("image") or {}).get("estimate") is not None]
    image.sort(key=lambda r: -r["scores"]["image"]["estimate"])
    rest = sorted((r for r in rows if r not in image), key=lambda r: -r["scores"]["text"]["estimate"])
    for i, r in enumerate(image, 1):
        r["rank"] = i
    return image + rest


def _cols(r: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """(text, sort value) of the four scores; the paper's approximate image score (and its gap) say so."""
    s = r["scores"]
    approx = r["reported"] and bool(r.get("note"))

    def ci(x: Mapping[str, Any] | None, signed: bool = False, about: bool = False) -> tuple[str, float | None]:
        text = with_ci(x, signed=signed) if x else "not given"
        return (("about " if about and x else "") + text, (x or {}).get("estimate"))

    return [ci(s.get("image"), about=approx), ci(s.get("text")), ci(r.get("modality_gap"), True, approx),
            ci(s.get("perception"))]


HEADERS = ["rank", "model", "image alignment [95% CI]", "text alignment [95% CI]", "modality gap [95% CI]",
           "perception [95% CI]", "N/A rate (image)", "no answer", "scorer", "source"]


def _facts(r: Mapping[str, Any]) -> list[str]:
    if r["reported"]:
        return ["", "", "", REPORTED + (f"; {r['note']}" if r.get("note") else "")]
    scorer = r.get("scorer") or {}
    data = r.get("data") or {}
    return [fmt(r["na_rate"]["image"]), str(sum(r["n_failed"].values())),
            f"{scorer.get('name')} v{scorer.get('version')}",
            f"submitted as {r['name']}, validated {str(r.get('validated', ''))[:10]}; {source_text(data)}; "
            f"prompts v{(r.get('prompts') or {}).get('version')}"]


INTRO = ("Ranked by image alignment (share of unsafe images judged unsafe, N/A excluded; higher is better); rows "
         "without an image score follow, by text alignment. Submitted rows were re-validated from their answers "
         "({cmd}); rows marked {reported} are the paper's published numbers. Modality gap = text minus image "
         "alignment.")


def render_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["# UnsafeConcepts leaderboard", "",
             INTRO.format(cmd="`python -m uc_tasks.leaderboard validate`", reported=f"*{REPORTED}*"), "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        cells = [str(r.get("rank", "-")), str(r.get("model") or r["name"]).replace("|", "/"),
                 *(t for t, _ in _cols(r)), *_facts(r)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_html(rows: Sequence[Mapping[str, Any]], dpi: int) -> str:
    from uc_tasks.report.plots import gap_bars

    body = [[cell(str(r.get("rank", "-")), r.get("rank")), cell(str(r.get("model") or r["name"])),
             *(cell(t, v) for t, v in _cols(r)), *(cell(t) for t in _facts(r))] for r in rows]
    gaps = [(str(r.get("model") or r["name"])[:50], numbers.estimate(r["modality_gap"]), r["reported"])
            for r in rows if r.get("modality_gap")]
    chart = figure(gap_bars(gaps, dpi), "modality gap per model") if gaps else ""
    intro = INTRO.format(cmd="<code>python -m uc_tasks.leaderboard validate</code>", reported=f"<i>{esc(REPORTED)}</i>")
    html = (f"<h1>UnsafeConcepts leaderboard</h1><p>{intro} Click a column to sort.</p>"
            f"{table(HEADERS, body, sortable=True)}<h2>Modality gap</h2>{chart}")
    return document("UnsafeConcepts leaderboard", html)


def build(results_dir: Path, verify: bool = True, dpi: int = 100) -> tuple[Path, Path]:
    """Write ``results_dir``/leaderboard.md and leaderboard.html; returns their paths."""
    rows = _rows(results_dir, verify)
    results_dir.mkdir(parents=True, exist_ok=True)
    md, page = results_dir / "leaderboard.md", results_dir / "leaderboard.html"
    md.write_text(render_markdown(rows))
    page.write_text(render_html(rows, dpi), encoding="utf-8")
    return md, page


