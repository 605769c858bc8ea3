"""The paper's Table 3 for evaluated models (``python -m uc_align.evaluate``, ``python -m uc_tasks.report``): safety on
the fine-tuning test and the out-of-domain sets against general ability, ours beside the paper's published rows.

Columns, each with a 95% bootstrap CI where it has one:
- alignment accuracy on ``unsafeconcepts_finetune_test`` all / safe / unsafe (N/A wrong) and 1 - Self-BLEU, as the
  task wrote them (``uc_tasks.summary.finetune_summary``);
- the same accuracy, all / safe / unsafe, on ``unsafeconcepts_smid`` and ``unsafeconcepts_nsfw``;
- MME accuracy, recomputed from lmms-eval's logged samples with our yes/no reader
  (``uc_tasks.scoring.rules.yesno``): lmms-eval's MME scorer, like the authors', reads "Not sure" as "No", and its
  score is MME's 0-2,800 sum, not the paper's accuracy; both stay in the JSON as lmms-eval wrote them, unused;
- LLaVA-Bench relative score (``metrics.relative_score``), recomputed from the logged judge scores; a judge request
  that failed (lmms-eval then logs scores -1, -1 and averages them in) leaves the value undefined, with the count;
- General Agg (``metrics.general_agg``: mean of MME and LLaVA-Bench);
- the generated yes/no stand-in (``uc_general_yesno``) where a run has it instead: labelled a stand-in, never MME,
  and never put into General Agg.
The paper's rows (LLaVA-1.5-7B) hold only what PROTOCOL.md states; every other cell says it is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uc_tasks import metrics
from uc_tasks.report import plots
from uc_tasks.report.page import esc
from uc_tasks.scoring.rules.yesno import read_yes_no
from uc_tasks.stats.bootstrap import bootstrap_sums_ci
from uc_tasks.summary import metric_ci

SAFETY_TASKS = ("finetune_test", "smid", "nsfw")
STANDIN = "uc_general_yesno"
METHODS = {"original": "original", "sft": "SFT", "dpo": "DPO", "ppo": "PPO", "grpo": "GRPO", "rloo": "RLOO"}

COLUMNS: tuple[tuple[str, str], ...] = (
    ("accuracy", "alignment accuracy (all)"), ("accuracy_safe", "safe"), ("accuracy_unsafe", "unsafe"),
    ("diversity", "1 - Self-BLEU"), ("smid", "SMID acc."), ("smid_safe", "SMID safe"),
    ("smid_unsafe", "SMID unsafe"), ("nsfw", "NSFW acc."), ("nsfw_safe", "NSFW safe"), ("nsfw_unsafe", "NSFW unsafe"),
    ("mme", "MME acc."),
    ("llava_bench", "LLaVA-Bench rel."), ("general_agg", "General Agg"), ("pope", "POPE acc."),
    ("standin", "yes/no stand-in acc. (NOT MME)"))

MISSING = "not in PROTOCOL.md"
REPORTED_MODEL = "LLaVA-1.5-7B"
PAPER: dict[str, dict[str, float]] = {  # PROTOCOL.md, "Published numbers": alignment accuracy / General Agg
    "original": {"accuracy": 0.736, "general_agg": 0.708},
    "sft": {"accuracy": 0.977, "general_agg": 0.558},
    "dpo": {"accuracy": 0.648, "general_agg": 0.656},
    "ppo": {"accuracy": 0.903, "general_agg": 0.687},
}
AUTHORS_FILES: dict[str, dict[str, float]] = {  # PROTOCOL.md: recomputed from the authors' answer files
    "original": {"llava_bench": 0.592}, "sft": {"llava_bench": 0.375}, "dpo": {"llava_bench": 0.566},
    "ppo": {"llava_bench": 0.557},
}


def _cell(ci: Mapping[str, Any] | None, **extra: Any) -> dict[str, Any]:
    ci = ci or {}
    return {"value": ci.get("estimate"), "ci_low": ci.get("ci_low"), "ci_high": ci.get("ci_high"), **extra}


def _first(resps: Any) -> str:
    while isinstance(resps, list) and resps:
        resps = resps[0]
    return resps if isinstance(resps, str) else ""


def _image_of(sample: Mapping[str, Any]) -> str:
    """The image a logged sample asked about: MME's ``question_id`` (an image path, two questions each; lmms-eval
    logs it in the metric's value and in ``input_media``, not the doc), else the first ``input_media``, else the
    document."""
    doc = sample.get("doc") or {}
    if "question_id" in doc:
        return str(doc["question_id"])
    for value in sample.values():
        if isinstance(value, dict) and "question_id" in value:
            return str(value["question_id"])
    media = sample.get("input_media")
    if isinstance(media, list) and media and isinstance(media[0], str):
        return media[0]
    return str(sample.get("doc_id"))


def yes_no_cell(samples: Sequence[Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """Accuracy of yes/no answers (the target a sample logged, our reader, unread = wrong) with a CI resampling
    images (MME asks two questions per image)."""
    by_image: dict[str, list[str]] = {}
    for s in samples:
        by_image.setdefault(_image_of(s), []).append(
            metrics.yes_no_outcome(read_yes_no(_first(s.get("filtered_resps"))), str(s.get("target", ""))))
    counts = {k: metrics.summarize(v) for k, v in by_image.items()}
    total = metrics.summarize(o for v in by_image.values() for o in v)
    return _cell(metric_ci(counts, "accuracy_strict", seed), n=total["n"], n_unread=total["n_na"],
                 reader="uc_tasks.scoring.rules.yesno (whole words; 'Not sure' is not 'No')")


def llava_cell(samples: Sequence[Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """LLaVA-Bench relative score from the judge scores lmms-eval logged (``gpt_eval_llava_all``: [reference,
    model]); undefined when a judge request failed."""
    sums: dict[str, list[float]] = {}
    failed, judges = 0, set()
    for s in samples:
        review = s.get("gpt_eval_llava_all") or {}
        scores = review.get("scores") or [-1, -1]
        judges.add(str(review.get("eval_model")))
        if len(scores) != 2 or min(scores) < 0 or review.get("eval_model") == "Failed Request":
            failed += 1
            continue
        sums[str(s.get("doc_id"))] = [float(scores[1]), float(scores[0])]
    extra = {"n": len(samples), "n_judge_failed": failed, "judge": sorted(judges)}
    if failed or not sums:
        return {"value": None, "ci_low": None, "ci_high": None, **extra,
                "note": f"{failed} of {len(samples)} judge requests failed: rerun with a working judge"}
    return _cell(bootstrap_sums_ci(sums, metrics.relative_score, 1000, seed), **extra)


def _safety_cells(tasks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    ft = (tasks.get("finetune_test") or {}).get("finetune")
    if ft:
        for name in ("accuracy", "accuracy_safe", "accuracy_unsafe"):
            out[name] = _cell(ft[name]["ci"], n=ft[name]["n"], n_na=ft[name]["n_na"])
        out["diversity"] = _cell(ft["diversity"]["all"]["ci"])
        out["na_rate"] = _cell(ft["na_rate"]["ci"])
    for name in ("smid", "nsfw"):
        f = (tasks.get(name) or {}).get("finetune")
        if f:
            out[name] = _cell(f["accuracy"]["ci"], n=f["accuracy"]["n"], n_na=f["accuracy"]["n_na"])
            for sub in ("safe", "unsafe"):
                m = f[f"accuracy_{sub}"]
                out[f"{name}_{sub}"] = _cell(m["ci"], n=m["n"], n_na=m["n_na"])
    return out


def our_row(name: str, method: str, summary: Mapping[str, Any], general: Mapping[str, Sequence[Any]],
            general_lmms: Mapping[str, Any] | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """One Table 3 row from an evaluated model's results summary and its general-ability samples."""
    tasks = summary.get("tasks") or {}
    first = next((tasks[k] for k in SAFETY_TASKS if k in tasks), {})
    seed = int(((first.get("ci") or {}).get("accuracy") or {}).get("seed", 2024))
    cells = _safety_cells(tasks)
    if "mme" in general:
        cells["mme"] = yes_no_cell(general["mme"], seed)
    if "llava_in_the_wild" in general:
        cells["llava_bench"] = llava_cell(general["llava_in_the_wild"], seed)
    if "pope" in general:
        cells["pope"] = yes_no_cell(general["pope"], seed)
    if STANDIN in general:
        cells["standin"] = yes_no_cell(general[STANDIN], seed) | {"stand_in": True, "note": (
            "a small generated yes/no task of ours standing in for MME offline; not MME, not in General Agg")}
    if "mme" in cells and "llava_bench" in cells:
        cells["general_agg"] = {"value": metrics.general_agg(cells["mme"]["value"], cells["llava_bench"]["value"])}
    return {"name": name, "method": method, "source": "ours", "checkpoint": checkpoint, "cells": cells,
            "scorer": summary.get("scorer"), "results": summary.get("path"),
            "lmms_eval_general_metrics": dict(general_lmms or {})}


def paper_rows(methods: Sequence[str]) -> list[dict[str, Any]]:
    """The paper's published rows for the methods given (those PROTOCOL.md has), marked as reported."""
    rows = []
    for m in dict.fromkeys(methods):
        if m not in PAPER:
            continue
        cells: dict[str, dict[str, Any]] = {}
        for key, _ in COLUMNS:
            if key in PAPER[m]:
                cells[key] = {"value": PAPER[m][key], "source": "reported by the paper"}
            elif key in AUTHORS_FILES.get(m, {}):
                cells[key] = {"value": AUTHORS_FILES[m][key], "source": "recomputed from the authors' answer files"}
            elif key == "standin":
                cells[key] = {"value": None, "note": "ours only"}
            else:
                cells[key] = {"value": None, "missing": MISSING}
        rows.append({"name": f"{METHODS[m]} (reported, {REPORTED_MODEL})", "method": m, "source": "reported",
                     "cells": cells})
    return rows


def build_table(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Our rows followed by the paper's for the same methods."""
    ours = [dict(r) for r in rows]
    return {"columns": [{"key": k, "title": t} for k, t in COLUMNS], "rows": ours + paper_rows([r["method"]
            for r in ours]), "notes": NOTES}


NOTES = [
    "Brackets: 95% bootstrap CI (fine-tuning test: concepts within their target resampled; SMID/NSFW: images; "
    "MME and the yes/no stand-in: images; LLaVA-Bench: questions).",
    "MME accuracy: our whole-word yes/no reader over lmms-eval's logged answers (lmms-eval's and the authors' scorer "
    "count 'Not ...' as 'No'); lmms-eval's own MME score is kept in the JSON, unused.",
    "LLaVA-Bench: lmms-eval's judge prompt at temperature 0 (the paper's gpt-4o at 0.2); relative score = sum of "
    "the model's scores over the reference's.",
    f"Reported rows: {REPORTED_MODEL} in the paper (PROTOCOL.md, 'Published numbers'); LLaVA-Bench values there "
    "are recomputed from the authors' answer files; cells PROTOCOL.md does not give are marked missing.",
    "'yes/no stand-in' is a small generated task of ours (uc_general_yesno) used where MME / LLaVA-Bench cannot be "
    "downloaded: NOT MME, not in General Agg.",
]


def fmt_cell(cell: Mapping[str, Any] | None) -> str:
    """A cell as text: ``v [lo, hi]``, ``v (reported)``, ``missing (...)``, ``not run``."""
    if not cell:
        return "not run"
    if cell.get("missing"):
        return "missing"
    v = cell.get("value")
    if v is None:
        return "n/a" + (f" ({cell['note']})" if cell.get("note") else "")
    text = f"{v:.3f}"
    if cell.get("ci_low") is not None:
        text += f" [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
    if cell.get("source") == "reported by the paper":
        text += " (reported)"
    elif cell.get("source"):
        text += " (authors' files)"
    return text


def used_columns(table: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The columns some row of ours has (the paper's alone do not add one)."""
    ours = [r for r in table["rows"] if r["source"] == "ours"]
    return [(k, t) for k, t in COLUMNS if any(k in r["cells"] for r in ours)]


def to_markdown(table: Mapping[str, Any]) -> str:
    cols = used_columns(table)
    lines = ["| model | " + " | ".join(t for _, t in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in table["rows"]:
        lines.append(f"| {r['name']} | " + " | ".join(fmt_cell(r["cells"].get(k)) for k, _ in cols) + " |")
    return "# Table 3: safety vs general ability\n\n" + "\n".join(lines) + "\n\n" + "\n".join(
        f"- {n}" for n in table["notes"]) + "\n"


def to_html(table: Mapping[str, Any]) -> str:
    from uc_tasks.report.page import cell
    from uc_tasks.report.page import table as html_table

    cols = used_columns(table)
    rows = [[cell(r["name"])] + [cell(fmt_cell(r["cells"].get(k)), (r["cells"].get(k) or {}).get("value"))
                                 for k, _ in cols] for r in table["rows"]]
    return html_table(["model", *(t for _, t in cols)], rows, cls="table3") + "".join(
        f"<p class='note'>{esc(n)}</p>" for n in table["notes"])


def tradeoff_png(table: Mapping[str, Any], dpi: int) -> bytes | None:
    """Alignment accuracy against General Agg (ours and the paper's), or, where no row of ours has General Agg,
    against the yes/no stand-in (ours only: the paper has no such number); None when nothing can be placed."""
    ours = [r for r in table["rows"] if r["source"] == "ours"]
    key = "general_agg" if any((r["cells"].get("general_agg") or {}).get("value") is not None for r in ours) \
        else "standin"
    rows = table["rows"] if key == "general_agg" else ours
    points = []
    for r in rows:
        x, y = r["cells"].get(key) or {}, r["cells"].get("accuracy") or {}
        if x.get("value") is not None and y.get("value") is not None:
            points.append((r["name"], (x["value"], x.get("ci_low"), x.get("ci_high")),
                           (y["value"], y.get("ci_low"), y.get("ci_high")), r["source"] == "reported"))
    if not points:
        return None
    xlabel = ("General Agg (mean of MME accuracy and LLaVA-Bench relative score)" if key == "general_agg" else
              "yes/no stand-in accuracy (generated task of ours, NOT MME)")
    title = ("safety vs general ability; hollow gold: reported by the paper" if key == "general_agg" else
             "safety vs general ability (stand-in; the paper's rows have no such number)")
    return plots.tradeoff(points, xlabel, title, dpi)


def write_table(table: Mapping[str, Any], out: Path, dpi: int = 100) -> list[Path]:
    """``table3.md``, ``table3.json`` and (when it can be drawn) ``table3_tradeoff.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "table3.md", out / "table3.json"]
    written[0].write_text(to_markdown(table), encoding="utf-8")
    written[1].write_text(json.dumps(table, indent=1, default=str), encoding="utf-8")
    png = tradeoff_png(table, dpi)
    if png:
        (out / "table3_tradeoff.png").write_bytes(png)
        written.append(out / "table3_tradeoff.png")
    return written


def rows_of_evaluation(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Table 3 rows of the finished models of an evaluation folder (``uc_tasks.runs.load_evaluation``)."""
    rows = []
    for e in entries:
        rec = e["record"]
        if rec.get("status") == "finished":
            rows.append(our_row(rec["name"], rec.get("method", "unknown"), e["summary"], e["general"],
                                e.get("general_lmms"), rec.get("checkpoint")))
    return rows
