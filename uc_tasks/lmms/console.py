"""What a run prints after lmms-eval's table: per task the counts behind the numbers (answers, N/A,
refusals, requests without an answer by cause, skipped rows), the group statistics with their CI, and
where the results file and the samples are. Registered once per run by the task glue; printed at exit."""

from __future__ import annotations

import atexit
import json
import sys
import time
from pathlib import Path
from typing import Any

from uc_tasks.lmms.rescue import output_folder

_STARTED = time.time()
_registered = False


def register_summary() -> None:
    """Print ``summary_lines`` of this run's results file when the process exits (once)."""
    global _registered
    if not _registered:
        _registered = True
        atexit.register(_print_summary, list(sys.argv))


def _newest_results(folder: Path) -> Path | None:
    found = [p for p in folder.rglob("*_results.json") if p.stat().st_mtime >= _STARTED - 1]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _ci(ci: dict[str, Any] | None) -> str:
    if not ci or ci.get("ci_low") is None:
        return ""
    return f" (95% CI {ci['ci_low']:.4f} to {ci['ci_high']:.4f})"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def summary_lines(results_file: Path) -> list[str]:
    """The summary of one results file (``results`` as lmms-eval wrote them)."""
    results = json.loads(results_file.read_text())["results"]
    lines = ["", "UnsafeConcepts summary"]
    for task, r in results.items():
        b = r.get("breakdown,none")
        if not task.startswith("unsafeconcepts") or not isinstance(b, dict):
            continue
        if "overall" in b:
            o = b["overall"]
            failed = ", ".join(f"{k} {v}" for k, v in o.get("failed", {}).items()) or "0"
            skipped = b.get("data", {}).get("n_skipped", 0)
            head = f"  {task}: n={o['n']} N/A={o['n_na']} refusals={o.get('n_refusal', 0)} no answer={failed} " \
                   f"skipped rows={skipped}"
            if "finetune" in b:  # the fine-tuning test: N/A counted wrong, safe and unsafe apart (paper)
                f = b["finetune"]
                lines.append(f"{head} accuracy (N/A wrong)={_fmt(f['accuracy']['value'])}{_ci(f['accuracy']['ci'])}")
                lines.append(f"  {task}: accuracy_safe={_fmt(f['accuracy_safe']['value'])} accuracy_unsafe="
                             f"{_fmt(f['accuracy_unsafe']['value'])} diversity (1 - Self-BLEU)="
                             f"{_fmt(f['diversity']['all']['diversity'])}")
            else:
                lines.append(f"{head} accuracy={_fmt(o['accuracy'])}{_ci(b.get('ci', {}).get('accuracy'))}")
        if "modality_gap" in b:
            gap = b["modality_gap"]
            lines.append(f"  {task}: modality_gap (text - image) = {_fmt(gap['overall'])}{_ci(gap.get('ci'))}")
        for form, s in b.get("context_sensitivity", {}).items():
            lines.append(f"  {task}: {form}_sensitivity (unsafe - safe context) = {_fmt(s['overall']['estimate'])}"
                         f"{_ci(s['overall'])}")
    samples = sorted(results_file.parent.glob(f"{results_file.name.split('_results')[0]}_samples_*.jsonl"))
    lines.append(f"  results: {results_file}")
    lines.append(f"  samples: {results_file.parent}/*_samples_*.jsonl ({len(samples)} files)" if samples
                 else "  samples: none written (add --log_samples to keep every answer for rescore)")
    return lines


def _print_summary(argv: list[str]) -> None:
    folder = output_folder(argv, default=None)
    if folder is None:
        print("\nunsafeconcepts: no --output_path, so no results file and no samples were written")
        return
    found = _newest_results(folder) if folder.exists() else None
    if found is not None:
        print("\n".join(summary_lines(found)))
