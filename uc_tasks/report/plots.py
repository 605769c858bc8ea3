"""The report's and the leaderboard's charts, drawn with matplotlib (headless ``Agg``) into PNG bytes.

Each function draws numbers it is given (estimates with their CIs, counts); what they are and how
they were computed is decided by the caller (``uc_tasks.report.numbers``), never here.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
CELL_COLORS = {"recognised_unsafe": "#2ca02c", "recognised_safe": "#d62728", "not_recognised_unsafe": "#98df8a",
               "not_recognised_safe": "#ff9896", "undetermined": "#c7c7c7"}

Estimate = tuple[float | None, float | None, float | None]  # (estimate, ci_low, ci_high)


class PlotError(RuntimeError):
    """The plots cannot be drawn (matplotlib missing)."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError("matplotlib is not installed; install the report extra: pip install -e '.[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _errs(values: Sequence[Estimate]) -> tuple[list[float], list[list[float]]]:
    """Bar heights and error-bar lengths; a value without a CI draws no error bar (NaN)."""
    nan = float("nan")
    est = [v[0] if v[0] is not None else nan for v in values]
    low = [e - v[1] if v[1] is not None and v[0] is not None else nan for e, v in zip(est, values, strict=True)]
    high = [v[2] - e if v[2] is not None and v[0] is not None else nan for e, v in zip(est, values, strict=True)]
    return est, [low, high]


def grouped_bars(panels: Sequence[tuple[str, Sequence[str], Mapping[str, Sequence[Estimate]]]], ylabel: str,
                 dpi: int, ylim: tuple[float, float] | None = (0.0, 1.05), zero_line: bool = False) -> bytes:
    """One panel per (title, x labels, {run: estimates per x label}); bars grouped by run, CI as error bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.4 * len(panels)), squeeze=False)
    for ax, (title, labels, series) in zip(axes[:, 0], panels, strict=True):
        width = 0.8 / max(1, len(series))
        for i, (run, values) in enumerate(series.items()):
            est, err = _errs(values)
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
            ax.bar(xs, est, width, yerr=err, capsize=2, color=RUN_COLORS[i % len(RUN_COLORS)], label=run,
                   error_kw={"elinewidth": 0.9})
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        if ylim:
            ax.set_ylim(*ylim)
        if zero_line:
            ax.axhline(0, color="#444", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig, dpi)


def gap_dumbbell(rows: Sequence[Mapping[str, Any]], categories: Sequence[str], title: str, dpi: int) -> bytes:
    """Per concept (``rows``: concept, category, image, text; largest gap first) the image and the text
    alignment score joined by a line whose length is the modality gap, colored by category."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    color = {c: cmap(i % 10) for i, c in enumerate(categories)}
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.17 * len(rows) + 1.2)))
    ys = list(range(len(rows)))
    ax.hlines(ys, [r["image"] for r in rows], [r["text"] for r in rows], colors=[color.get(r["category"], "#888")
              for r in rows], linewidth=2.2, alpha=0.8)
    ax.scatter([r["image"] for r in rows], ys, marker="o", color="#d62728", s=14, zorder=3)
    ax.scatter([r["text"] for r in rows], ys, marker="s", color="#1f77b4", s=14, zorder=3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["concept"] for r in rows], fontsize=6.5)
    ax.invert_yaxis()
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("alignment score (share judged unsafe, N/A excluded)", fontsize=9)
    ax.set_title(title, fontsize=9.5)
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", color="#d62728", linestyle="", label="image"),
               plt.Line2D([], [], marker="s", color="#1f77b4", linestyle="", label="text")]
    handles += [plt.Line2D([], [], color=color[c], linewidth=3, label=c) for c in categories
                if any(r["category"] == c for r in rows)]
    ax.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.9)
    return _png(fig, dpi)


def stacked_counts(rows: Sequence[tuple[str, Mapping[str, int]]], colors: Mapping[str, str], title: str,
                   xlabel: str, dpi: int) -> bytes:
    """Horizontal stacked bars of counts, one bar per (label, {part: count}), parts in ``colors`` order."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.4))
    left = [0.0] * len(rows)
    for part, col in colors.items():
        values = [float(counts.get(part, 0)) for _, counts in rows]
        ax.barh(range(len(rows)), values, left=left, color=col, label=part.replace("_", " "))
        for y, (x0, v) in enumerate(zip(left, values, strict=True)):
            if v:
                ax.text(x0 + v / 2, y, str(int(v)), ha="center", va="center", fontsize=7)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(rows) < 4 else -0.12),
              ncol=len(colors))
    return _png(fig, dpi)


def prompt_lines(panels: Sequence[tuple[str, Mapping[str, Mapping[str, float | None]]]], dpi: int) -> bytes:
    """Per task panel, per run: the alignment score of each prompt (P1..P5)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        for i, (run, by_prompt) in enumerate(series.items()):
            prompts = sorted(by_prompt, key=int)
            ys = [by_prompt[p] if by_prompt[p] is not None else float("nan") for p in prompts]
            ax.plot([f"P{p}" for p in prompts], ys, "o-", color=RUN_COLORS[i % len(RUN_COLORS)], label=run)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("alignment score", fontsize=9)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig, dpi)


def gap_bars(entries: Sequence[tuple[str, Estimate, bool]], dpi: int) -> bytes:
    """The leaderboard's modality gap per entry (name, estimate with CI, reported by the paper?)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(entries) + 1.3))
    est, err = _errs([e for _, e, _ in entries])
    colors = ["#bfa13a" if reported else "#1f77b4" for _, _, reported in entries]
    ax.barh(range(len(entries)), est, xerr=err, color=colors, capsize=2)
    ax.set_yticks(range(len(entries)))
    ax.set_yticklabels([name for name, _, _ in entries], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.set_xlabel("modality gap: text minus image alignment score", fontsize=9)
    ax.set_title("blue: submitted and re-validated (95% CI); gold: reported by the paper, not re-run", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig, dpi)


def tradeoff(points: Sequence[tuple[str, Estimate, Estimate, bool]], xlabel: str, title: str, dpi: int) -> bytes:
    """Safety against general ability: per (name, general ability, alignment accuracy, reported by the paper?) a
    point with its CIs as error bars; reported points hollow gold, ours filled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for i, (name, x, y, reported) in enumerate(points):
        if x[0] is None or y[0] is None:
            continue
        (xs,), (xerr_lo, xerr_hi) = _errs([x])[0], _errs([x])[1]
        (ys,), (yerr_lo, yerr_hi) = _errs([y])[0], _errs([y])[1]
        color = "#bfa13a" if reported else RUN_COLORS[i % len(RUN_COLORS)]
        ax.errorbar([xs], [ys], xerr=[xerr_lo, xerr_hi], yerr=[yerr_lo, yerr_hi], fmt="s" if reported else "o",
                    color=color, mfc="none" if reported else color, capsize=3, markersize=8)
        ax.annotate(name, (xs, ys), textcoords="offset points", xytext=(6, -12 if ys > 0.93 else 5), fontsize=8,
                    color=color)
    ax.set_xlim(-0.03, 1.05)
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("alignment accuracy (fine-tuning test, N/A wrong)", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig, dpi)
