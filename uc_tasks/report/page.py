"""HTML pieces shared by the report and the leaderboard page: one self-contained document (inline CSS
and script, plots embedded as base64 PNG), tables, numbers with their CIs.

The page's script records load errors (``data-errors`` on ``<html>``) and, once loaded, how many of
its images decoded (``data-images-decoded="ok/total"`` on ``<body>``), so a headless browser can check
the page by its DOM alone.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1280px;padding:1.5em;
color:#1b1b1b;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .55em;
text-align:left;vertical-align:top}th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em}.warning{background:#fff4e5;border:1px solid #f0a030;padding:.7em 1em;
border-radius:4px}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1em}
figure{margin:.6em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
.examples{display:flex;flex-wrap:wrap;gap:.8em}.examples figure{width:230px}.reported{color:#6b4f00}
th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#999}code{font-size:.9em}
"""

_HEAD_SCRIPT = """
document.documentElement.dataset.errors = "0";
window.addEventListener("error", function (e) {
  var n = parseInt(document.documentElement.dataset.errors, 10) + 1;
  document.documentElement.dataset.errors = String(n);
  document.documentElement.dataset.lastError = String(e.message || (e.target && e.target.tagName) || e.type);
}, true);
"""

_END_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.imagesDecoded = ok + "/" + imgs.length;
});
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === "desc" ? 1 : -1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      function key(r) { var c = r.cells[col], v = c.dataset.value;
        return v === undefined ? c.textContent : (v === "" ? -Infinity : parseFloat(v)); }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * dir; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(x: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number for the page; an undefined value (only N/A answers, nothing to compare) is 'n/a'."""
    if x is None:
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def with_ci(ci: Mapping[str, Any] | None, digits: int = 3, signed: bool = False) -> str:
    """``estimate [low, high]`` of a bootstrap CI record (``uc_tasks.summary.metric_ci``)."""
    if not ci or ci.get("estimate") is None:
        return "n/a"
    if ci.get("ci_low") is None:
        return fmt(ci["estimate"], digits, signed)
    return (f"{fmt(ci['estimate'], digits, signed)} [{fmt(ci['ci_low'], digits, signed)}, "
            f"{fmt(ci['ci_high'], digits, signed)}]")


def cell(text: str, value: float | None = None, num: bool = False, raw: bool = False) -> str:
    """A table cell; ``value`` is what a sortable table sorts by (empty: undefined, sorts last)."""
    attrs = ' class="num"' if num or value is not None else ""
    if value is not None or num:
        attrs += f' data-value="{"" if value is None else repr(float(value))}"'
    return f"<td{attrs}>{text if raw else esc(text)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], sortable: bool = False, cls: str = "") -> str:
    """A table of pre-rendered cells (``cell``); plain strings are escaped into cells."""
    classes = " ".join(c for c in (cls, "sortable" if sortable else "") if c)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else cell(c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(png: bytes, alt: str, caption: str = "", mime: str = "image/png") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png, mime)}" alt="{esc(alt)}">{cap}</figure>'


def document(title: str, body: str) -> str:
    """The whole page: nothing is fetched from elsewhere."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style><script>{_HEAD_SCRIPT}</script></head>"
            f"<body>{body}<script>{_END_SCRIPT}</script></body></html>\n")
