"""A self-contained HTML report (and its PNG plots) from one or more finished runs.

    python -m uc_tasks.report RUN [RUN ...] --out DIR [--labels A B] [--unblur]

A RUN is an lmms-eval ``--output_path`` folder (its newest results), a ``*_results.json`` or a
``rescored_<scorer>.json`` written by ``python -m uc_tasks.rescore``. Everything shown comes from the
results summaries the run wrote (read by ``uc_tasks.runs.load_summaries``): per-category bars with
CIs, the per-concept modality gap with its paired tests, perception x alignment, context and prompt
sensitivity, N/A and failure counts, and the recorded provenance. Two runs are compared side by side
(first = before, second = after). Fine-tuning runs (an output folder of ``python -m uc_align.evaluate``, or runs
of ``unsafeconcepts_finetune_test`` / ``_smid`` / ``_nsfw``) add the paper's Table 3 (``uc_tasks.report.table3``).
Example images come from the recorded data source, blurred unless ``--unblur``. ``DIR/report.html`` embeds every
plot; the plots are also written as ``DIR/*.png``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from uc_tasks.config import help_field, parse_config
from uc_tasks.report import sections, table3
from uc_tasks.report.page import document, esc
from uc_tasks.report.plots import PlotError
from uc_tasks.runs import RunError, general_results, general_samples, is_evaluation, load_evaluation, load_summaries

__all__ = ["ReportConfig", "build_report", "main"]


@dataclass
class ReportConfig:
    """Settings of ``python -m uc_tasks.report``."""

    runs: list[str] = help_field(
        [], "finished runs: lmms-eval --output_path folders (run with --log_samples), *_results.json files or "
        "rescored_<scorer>.json files; two runs are compared side by side (first = before, second = after)")
    out: str = help_field("", "folder to write report.html and the PNG plots into (created if missing)")
    labels: list[str] = help_field([], "a name for each run, in order (default: run 1, run 2, ... with the model "
                                   "each run recorded)")
    title: str = help_field("UnsafeConcepts report", "title of the page")
    examples: int = help_field(6, "how many example images to show (from the data source the run recorded); 0: none")
    unblur: bool = help_field(False, "include the example images unblurred (they show unsafe content); by default "
                              "the page holds only blurred copies, behind a content warning")
    dpi: int = help_field(100, "resolution of the PNG plots (dots per inch, 50 to 300)")

    def check(self) -> None:
        """Cross-field checks; a ValueError names the value, the rule and the fix."""
        if not self.runs:
            raise ValueError("no run given: pass lmms-eval output folders, *_results.json or rescored_*.json files")
        if not self.out:
            raise ValueError("--out is required: the folder to write report.html into")
        if self.labels and len(self.labels) != len(self.runs):
            raise ValueError(f"--labels has {len(self.labels)} name(s) for {len(self.runs)} run(s); give one per run")
        if self.examples < 0:
            raise ValueError(f"--examples {self.examples}: must be 0 (none) or more")
        if not 50 <= self.dpi <= 300:
            raise ValueError(f"--dpi {self.dpi}: must be between 50 and 300")


def _label(i: int, summary: dict, labels: list[str]) -> str:
    if labels:
        return labels[i]
    model = summary.get("model") or Path(summary["path"]).stem
    return f"run {i + 1} ({model[:60]})"


def build_report(cfg: ReportConfig) -> Path:
    """Write ``cfg.out``/report.html and its plots; returns the page's path. Bad input raises RunError
    or ValueError with a one-line message."""
    cfg.check()
    runs, finetuned = [], []
    for i, spec in enumerate(cfg.runs):
        if is_evaluation(spec):  # python -m uc_align.evaluate's folder: each finished model is a run and a row
            entries = [e for e in load_evaluation(spec) if e["record"].get("status") == "finished"]
            runs += [sections.Run(e["record"]["name"], e["summary"]) for e in entries]
            finetuned += table3.rows_of_evaluation(entries)
            continue
        summary = load_summaries(spec)
        runs.append(sections.Run(_label(i, summary, cfg.labels), summary))
        if any(k in summary["tasks"] for k in table3.SAFETY_TASKS):
            results = Path(summary["path"])
            finetuned.append(table3.our_row(runs[-1].label, "unknown", summary, general_samples(results),
                                            general_results(results) if results.suffix == ".json" else None))
    if not runs:
        raise RunError(f"{', '.join(cfg.runs)}: no finished model inside; run python -m uc_align.evaluate to the end")
    parts = [
        sections.table3(finetuned, cfg.dpi),
        sections.headline(runs),
        sections.per_category(runs, cfg.dpi),
        sections.modality_gap(runs, cfg.dpi),
        sections.quadrants(runs, cfg.dpi),
        sections.context(runs, cfg.dpi),
        sections.prompt_sensitivity(runs, cfg.dpi),
        sections.answers(runs, cfg.dpi),
        sections.example_images(runs[0], cfg.examples, cfg.unblur),
        sections.provenance(runs),
    ]
    listing = "".join(f"<li><b>{esc(r.label)}</b>: {esc(r.summary['path'])} ({esc(r.summary['format'])}, "
                      f"scorer {esc((r.summary.get('scorer') or {}).get('name', '?'))})</li>" for r in runs)
    contents = " | ".join(f"<a href='#{a}'>{t}</a>" for a, t in (
        *((("table3", "Table 3"),) if finetuned else ()), ("headline", "headline"), ("categories", "categories"),
        ("gap", "modality gap"),
        ("quadrants", "perception x alignment"), ("context", "context"), ("prompts", "prompts"),
        ("answers", "N/A and failures"), ("examples", "examples"), ("provenance", "provenance")))
    warning = ("<p class='warning'>Content warning: this report is about unsafe concepts (hate symbols, violence, "
               "self-harm, sexual content, ...) and may show example images of them, blurred unless built with "
               "--unblur.</p>" if cfg.examples else "")
    body = (f"<h1>{esc(cfg.title)}</h1>{warning}<ul>{listing}</ul><p class='note'>{contents}</p>"
            + "".join(p.html for p in parts))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        for name, png in part.plots.items():
            (out / name).write_bytes(png)
    page = out / "report.html"
    page.write_text(document(cfg.title, body), encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(ReportConfig, argv, __doc__.split("\n\n")[0], positional="runs")
    try:
        page = build_report(cfg)
    except (RunError, ValueError, PlotError, OSError) as e:
        print(f"unsafeconcepts report: {e}", file=sys.stderr)
        return 2
    print(f"wrote {page} ({page.stat().st_size // 1024} KiB, self-contained) and its plots in {page.parent}")
    return 0
