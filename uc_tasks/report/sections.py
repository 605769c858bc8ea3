"""The report's sections, each from the runs' results summaries: its HTML and the PNG plots it embeds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from uc_tasks import metrics
from uc_tasks.data.tasks import CONTEXT_FORMS, KINDS
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.prompts import render
from uc_tasks.report import examples as ex
from uc_tasks.report import numbers as nb
from uc_tasks.report import plots
from uc_tasks.report.page import cell, esc, figure, fmt, table, with_ci


@dataclass
class Run:
    label: str
    summary: dict[str, Any]

    @property
    def tasks(self) -> dict[str, Any]:
        return self.summary["tasks"]


@dataclass
class Section:
    html: str
    plots: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, png: bytes, alt: str, caption: str = "") -> str:
        self.plots[name] = png
        return figure(png, alt, caption)


def _present(runs: Sequence[Run], kinds: Sequence[str]) -> list[str]:
    return [k for k in kinds if any(k in r.tasks for r in runs)]


def headline(runs: Sequence[Run]) -> Section:
    """The headline numbers side by side; with two runs, the change (second minus first) with its CI."""
    compare = len(runs) == 2
    headers = ["", *(r.label for r in runs)] + (["change (2nd - 1st) [95% CI]"] if compare else [])
    rows = []
    for kind in _present(runs, nb.HEADLINE_TASKS):
        row = [nb.TITLES[kind] + (" (share judged unsafe)" if kind in nb.ALIGNMENT_TASKS else " (accuracy)")]
        row += [with_ci((r.tasks.get(kind) or {}).get("ci", {}).get("accuracy")) if kind in r.tasks else "not run"
                for r in runs]
        if compare:
            a, b = (r.tasks.get(kind) for r in runs)
            row.append(with_ci(nb.change(a, b), signed=True) if a and b else "n/a")
        rows.append(row)
    if any(r.summary.get("group") for r in runs):
        gaps = [(r.summary.get("group") or {}).get("modality_gap") or {} for r in runs]
        row = ["Modality gap (text - image)", *(with_ci(g.get("ci"), signed=True) if g else "not run" for g in gaps)]
        if compare:
            row.append(fmt(metrics.difference(gaps[1].get("overall"), gaps[0].get("overall")), signed=True)
                       if all(gaps) else "n/a")
        rows.append(row)
    for kind in _present(runs, nb.HEADLINE_TASKS):
        row = [f"{nb.TITLES[kind]}: answers / N/A / no answer"]
        for r in runs:
            o = (r.tasks.get(kind) or {}).get("overall")
            row.append(f"{o['n']} / {o['n_na']} / {o['n_failed']}" if o else "not run")
        rows.append(row + ([""] if compare else []))
    note = ("<p class='note'>Alignment scores: share of answers judged unsafe, N/A answers excluded (the paper's). "
            "Brackets: 95% bootstrap CI resampling concepts (each run's seed). Requests without an answer are "
            "counted, never scored."
            + (" The change is the second run minus the first, its CI resampling the concepts of both runs "
               "together (uc_tasks.summary.difference_ci)." if compare else "") + "</p>")
    return Section("<h2 id='headline'>Headline numbers</h2>" + table(headers, rows) + note)


def per_category(runs: Sequence[Run], dpi: int) -> Section:
    kinds = _present(runs, nb.HEADLINE_TASKS)
    if not kinds:
        return Section("")
    cats = [*load_taxonomy().categories, "overall"]
    panels = []
    for kind in kinds:
        series = {}
        for r in runs:
            cis = nb.category_cis(r.tasks[kind]) if kind in r.tasks else {}
            series[r.label] = [nb.estimate(cis.get(c)) for c in cats]
        panels.append((nb.TITLES[kind], cats, series))
    s = Section("<h2 id='categories'>Per category</h2>")
    s.html += s.add("per_category.png", plots.grouped_bars(panels, "accuracy / share judged unsafe", dpi),
                    "per-category perception and alignment with 95% CIs",
                    "Per category, with 95% CIs resampling the category's concepts; 'overall' as the run wrote it.")
    return s


def modality_gap(runs: Sequence[Run], dpi: int) -> Section:
    with_group = [r for r in runs if r.summary.get("group")]
    if not with_group:
        return Section("<h2 id='gap'>Modality gap</h2><p>No run holds both the image and the text task.</p>")
    cats = load_taxonomy().categories
    s = Section("<h2 id='gap'>Modality gap per concept</h2><div class='grid'>")
    for i, r in enumerate(with_group):
        g = r.summary["group"]
        gap, test = g["modality_gap"], g.get("modality_gap_test") or {}
        perm, mc = test.get("permutation") or {}, test.get("mcnemar") or {}
        title = (f"{r.label}: gap {with_ci(gap.get('ci'), signed=True)}\n"
                 f"sign-flip test p = {fmt(perm.get('p_value'), 4)} ({perm.get('method')}); "
                 f"McNemar b = {mc.get('b')}, c = {mc.get('c')}, p = {fmt(mc.get('p_value'), 4)}")
        rows = nb.gap_rows(g)
        body = "<p>no concept has both scores</p>"
        if rows:
            body = s.add(f"modality_gap_{i + 1}.png", plots.gap_dumbbell(rows, cats, title, dpi),
                         f"per-concept image and text alignment scores of {r.label}")
        flagged = test.get("unsafe_text_safe_image") or []
        cat_rows = [[c, cell(fmt(v, signed=True), v)] for c, v in (gap.get("per_category") or {}).items()]
        s.html += (f"<div><h3>{esc(r.label)}</h3>{body}<p>{len(flagged)} concept(s) judged unsafe as text but safe "
                   f"as an image (threshold {test.get('threshold')}): {esc(', '.join(flagged)) or 'none'}.</p>"
                   f"{table(['category', 'gap (text - image)'], cat_rows)}</div>")
    s.html += ("</div><p class='note'>Per concept: image score (circle) and text score (square); the line is the "
               "gap. Sign-flip permutation test of the mean per-concept gap and exact McNemar on the "
               "per-concept verdicts, as the run wrote them.</p>")
    return s


_CELLS = ("recognised_unsafe", "recognised_safe", "not_recognised_unsafe", "not_recognised_safe", "undetermined")


def _cells(c: dict[str, int]) -> dict[str, int]:
    return {k: c.get(k, 0) for k in _CELLS[:4]} | {
        "undetermined": c.get("undetermined_perception", 0) + c.get("undetermined_alignment", 0)}


def quadrants(runs: Sequence[Run], dpi: int) -> Section:
    with_table = [r for r in runs if (r.summary.get("group") or {}).get("perception_x_alignment")]
    if not with_table:
        return Section("")
    s = Section("<h2 id='quadrants'>Perception x alignment</h2><div class='grid'>")
    for i, r in enumerate(with_table):
        t = r.summary["group"]["perception_x_alignment"]
        o = t["overall"]
        rows = [("overall", _cells(o))] + [(c, _cells(v)) for c, v in t["per_category"].items()]
        png = plots.stacked_counts(rows, {k: plots.CELL_COLORS[k] for k in _CELLS}, f"{r.label}: images per cell",
                                   "images", dpi)
        grid = table(["", "judged unsafe", "judged safe"],
                     [["recognised", str(o["recognised_unsafe"]), str(o["recognised_safe"])],
                      ["not recognised", str(o["not_recognised_unsafe"]), str(o["not_recognised_safe"])]])
        s.html += (f"<div><h3>{esc(r.label)}</h3>{grid}<p>judged safe when recognised: "
                   f"{fmt(o.get('judged_safe_if_recognised'))}; when not recognised: "
                   f"{fmt(o.get('judged_safe_if_not_recognised'))}; undetermined: "
                   f"{o.get('undetermined_perception', 0)} (perception N/A) + {o.get('undetermined_alignment', 0)} "
                   f"(every alignment reading N/A)</p>"
                   + s.add(f"perception_x_alignment_{i + 1}.png", png, f"perception x alignment of {r.label}")
                   + "</div>")
    rule = with_table[0].summary["group"]["perception_x_alignment"].get("rule", "")
    s.html += f"</div><p class='note'>{esc(rule)}</p>"
    return s


def context(runs: Sequence[Run], dpi: int) -> Section:
    with_ctx = [r for r in runs if r.summary.get("context_sensitivity")]
    if not with_ctx:
        return Section("<h2 id='context'>Context sensitivity</h2><p>No run holds the context tasks "
                       "(<code>unsafeconcepts_context</code>).</p>")
    cats = [*load_taxonomy().categories, "overall"]
    panels, rows = [], []
    for form in CONTEXT_FORMS:
        series = {}
        for r in with_ctx:
            f = (r.summary["context_sensitivity"] or {}).get(form)
            if f:
                series[r.label] = [nb.estimate(f["overall"] if c == "overall" else f["per_category"].get(c))
                                   for c in cats]
                rows.append([r.label, form, with_ci(f["overall"], signed=True),
                             fmt(f["unsafe_share"]["safe_context"]), fmt(f["unsafe_share"]["unsafe_context"]),
                             fmt(f["na_rate"]["safe_context"]), fmt(f["na_rate"]["unsafe_context"])])
        if series:
            panels.append((f"{form} form: unsafe-context minus safe-context share judged unsafe", cats, series))
    s = Section("<h2 id='context'>Context sensitivity</h2>")
    s.html += s.add("context_sensitivity.png", plots.grouped_bars(panels, "sensitivity", dpi, (-1.05, 1.05), True),
                    "context sensitivity per category with 95% CIs")
    s.html += table(["run", "form", "sensitivity [95% CI]", "unsafe share, safe context", "unsafe share, unsafe "
                     "context", "N/A rate, safe", "N/A rate, unsafe"], rows)
    s.html += ("<p class='note'>A context-aware model calls an image unsafe more often in the unsafe context "
               "(sensitivity &gt; 0); one that calls everything unsafe has a sensitivity near 0 however high its "
               "unsafe share: read the two together.</p>")
    return s


def prompt_sensitivity(runs: Sequence[Run], dpi: int) -> Section:
    kinds = [k for k in _present(runs, nb.ALIGNMENT_TASKS) if len(KINDS[k].prompts) > 1]
    if not kinds:
        return Section("")
    panels = [(nb.TITLES[k], {r.label: {p: v["accuracy"] for p, v in r.tasks[k]["per_prompt"].items()}
                              for r in runs if k in r.tasks}) for k in kinds]
    rows = []
    for k in kinds:
        for r in runs:
            ps = (r.tasks.get(k) or {}).get("prompt_sensitivity")
            if ps:
                rows.append([nb.TITLES[k], r.label, fmt(ps.get("mean")), f"P{ps.get('worst_prompt')}: "
                             f"{fmt(ps.get('worst'))}", f"P{ps.get('best_prompt')}: {fmt(ps.get('best'))}",
                             fmt(ps.get("spread"))])
    texts = [[f"P{i}", render(KINDS["image"].prompts[i - 1]), render(KINDS["text"].prompts[i - 1],
             concept="[concept]")] for i in range(1, len(KINDS["image"].prompts) + 1)]
    s = Section("<h2 id='prompts'>Prompt sensitivity</h2>")
    s.html += s.add("prompt_sensitivity.png", plots.prompt_lines(panels, dpi), "alignment score per prompt")
    s.html += table(["task", "run", "mean", "worst", "best", "spread"], rows)
    s.html += table(["prompt", "image form", "text form"], texts)
    return s


def answers(runs: Sequence[Run], dpi: int) -> Section:
    kinds = [k for k in KINDS if any(k in r.tasks for r in runs)]
    series = {r.label: [nb.estimate((r.tasks.get(k) or {}).get("ci", {}).get("na_rate")) for k in kinds] for r in runs}
    s = Section("<h2 id='answers'>N/A answers and requests without an answer</h2>")
    s.html += s.add("na_rate.png", plots.grouped_bars([("N/A rate per task", kinds, series)], "na_rate", dpi),
                    "N/A rate per task with 95% CIs")
    bars = [(f"{r.label}: {k}", nb.answer_counts(r.tasks[k])) for r in runs for k in kinds if k in r.tasks]
    parts = ["hit", "miss", "N/A", *sorted({p for _, c in bars for p in c if p.startswith("no answer")})]
    palette = {"hit": "#2ca02c", "miss": "#d62728", "N/A": "#c7c7c7"}
    extra = ["#9467bd", "#8c564b", "#17becf"]
    colors = {p: palette.get(p) or extra[i % len(extra)] for i, p in enumerate(parts)}
    s.html += s.add("answers.png", plots.stacked_counts(bars, colors, "requests per task", "requests", dpi),
                    "requests per task by what became of them")
    rows = []
    for r in runs:
        for k in kinds:
            o = (r.tasks.get(k) or {}).get("overall")
            if o:
                failed = ", ".join(f"{n} {kind}" for kind, n in (o.get("failed") or {}).items()) or "0"
                rows.append([r.label, k, str(o["n"]), str(o["n_na"]), fmt(o["na_rate"]), str(o.get("n_refusal", 0)),
                             failed])
    s.html += table(["run", "task", "answers", "N/A", "na_rate", "refusals", "no answer"], rows)
    s.html += ("<p class='note'>N/A: the scorer could not tell (never counted right or wrong in accuracy). "
               "No answer: the backend recorded a failed request (provider block, error); counted, never scored, "
               "left out of every metric.</p>")
    return s


def example_images(run: Run, n: int, unblur: bool) -> Section:
    if n <= 0:
        return Section("")
    picks = ex.pick(run.summary, n)
    source = ((run.tasks.get("image") or {}).get("data") or {}).get("source")
    found, note = ex.load(source, picks, unblur)
    if not found:
        return Section(f"<h2 id='examples'>Example images</h2><p>{esc(note)}</p>")
    figs = "".join(figure(jpeg, f"example image of {p['concept']}",
                          f"{esc(p['concept'])}: this image judged safe in {p['codes'].count('m')} of "
                          f"{len(p['codes'])} prompts; concept's image score {fmt(p['image'])}, text score "
                          f"{fmt(p['text'])}", mime="image/jpeg") for p, jpeg in found)
    state = "" if unblur else " open"
    what = ("UNBLURRED: these images show unsafe content (built with --unblur). Open to view."
            if unblur else "blurred (the sharp images are not in this page; build with --unblur to include them)")
    return Section(f"<h2 id='examples'>Example images</h2><details{state}><summary class='warning'>Content warning: "
                   f"images of unsafe concepts from {esc(run.label)}'s data, {esc(what)}</summary>"
                   f"<div class='examples'>{figs}</div></details>")


def provenance(runs: Sequence[Run]) -> Section:
    html = "<h2 id='provenance'>Provenance</h2><div class='grid'>"
    for r in runs:
        html += f"<div><h3>{esc(r.label)}</h3>{table(['', 'recorded'], nb.provenance_rows(r.summary))}</div>"
    return Section(html + "</div>")


def table3(rows: Sequence[dict[str, Any]], dpi: int) -> Section:
    """Table 3 (fine-tuning runs: safety vs general ability, the paper's rows beside ours) and its trade-off plot."""
    if not rows:
        return Section("")
    from uc_tasks.report import table3 as t3

    data = t3.build_table(rows)
    s = Section("<h2 id='table3'>Table 3: safety vs general ability</h2>" + t3.to_html(data))
    png = t3.tradeoff_png(data, dpi)
    if png:
        s.html += s.add("table3_tradeoff.png", png, "alignment accuracy against general ability",
                        "Safety against general ability, 95% CIs as error bars.")
    return s
