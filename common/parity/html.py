"""``parity.html``: one self-contained page (inline CSS, charts as base64 PNG) for people.

Everything that comes from the data is passed through ``html.escape``; nothing is loaded from
the network, so the file can be attached to a ticket or opened offline.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from common.parity.distribution import QUANTILES, SAMPLING_NOTE
from common.parity.report_data import (
    ColumnResult,
    PairResult,
    ParityReport,
    ScoreDistribution,
    show_number,
    show_type,
    show_value,
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{color:#176b1e;font-weight:bold}.bad{color:#b00020;font-weight:bold}
code{font-size:12px}.verdict{font-size:1.4em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: ParityReport) -> str:
    """The whole page as one string."""
    ok = report.ok
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Parity report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Parity report</h1><p class='verdict {'ok' if ok else 'bad'}'>"
        f"{'PARITY OK' if ok else 'PARITY FAILED'}</p>",
        f"<p>Key: <code>{_e(', '.join(report.key))}</code>"
        + (f" &middot; reference: <b>{_e(report.reference)}</b>" if report.reference else "")
        + f" &middot; {report.seconds:.1f} s, {report.buckets} buckets</p>",
    ]
    problems = report.problems()
    if problems:
        parts.append("<h2>Problems</h2><ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    findings = report.reference_findings()
    if findings:
        parts.append(f"<h2>Which side left the reference ({_e(report.reference)})</h2><ul>")
        parts += [f"<li>{_e(f)}</li>" for f in findings]
        parts.append("</ul>")
    parts.append(_sides_table(report))
    for pair in report.pairs:
        parts.append(_pair_section(pair))
    if report.distributions:
        parts.append("<h2>Score distributions</h2>")
        parts.append(f"<p>{_e(SAMPLING_NOTE)}</p>")
        parts += [_distribution_section(d, report.settings.threshold) for d in report.distributions]
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(headers: list[str], rows: list[list[object]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned text."""

    def cell(tag: str, i: int, value: object) -> str:
        return f"<{tag}{' class=l' if i < left else ''}>{_e(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sides_table(report: ParityReport) -> str:
    rows = [
        [s.name, s.path, f"{s.rows:,}", s.files, s.null_keys, s.duplicate_keys, s.duplicate_rows]
        for s in report.sides
    ]
    headers = ["side", "path", "rows", "files", "null keys", "duplicated keys", "rows with them"]
    html_out = "<h2>Outputs</h2>" + _table(headers, rows, left=2)
    for s in report.sides:
        if s.duplicate_examples:
            keys = list(s.duplicate_examples[0])
            html_out += f"<p>Duplicated keys on {_e(s.name)}:</p>"
            html_out += _table(keys, [[show_value(x[k]) for k in keys] for x in s.duplicate_examples])
    return html_out


def _column_row(c: ColumnResult) -> list[object]:
    verdict = c.verdict
    if c.decision_flips is not None and c.compared:
        verdict += f" (decisions flipped: {c.decision_flips / c.compared:.2%})"
    counts = [c.compared, c.unequal, c.null_mismatches] if c.status == "compared" else [None] * 3
    return [
        c.name,
        show_type(c),
        c.tolerance or "exact",
        *map(show_number, counts),
        show_number(c.max_abs_diff),
        show_number(c.max_ulps),
        c.ulp_unit or "-",
        verdict,
    ]


def _pair_section(pair: PairResult) -> str:
    out = [
        f"<h2>{_e(pair.left)} vs {_e(pair.right)}</h2>",
        f"<p>{pair.matched:,} keys compared; {pair.left_only:,} only in {_e(pair.left)}; "
        f"{pair.right_only:,} only in {_e(pair.right)}; {pair.duplicate_keys_skipped:,} shared keys "
        "skipped because duplicated.</p>",
    ]
    headers = [
        "column",
        "type",
        "tolerance",
        "compared",
        "unequal",
        "null mismatches",
        "max |diff|",
        "max ULPs",
        "ULP unit",
        "verdict",
    ]
    out.append(_table(headers, [_column_row(c) for c in pair.columns], left=3))
    for side, examples in ((pair.left, pair.left_only_examples), (pair.right, pair.right_only_examples)):
        if examples:
            keys = list(examples[0])
            out.append(f"<p>Keys only in {_e(side)} (examples):</p>")
            out.append(_table(keys, [[show_value(x[k]) for k in keys] for x in examples]))
    if pair.samples:
        out.append("<p>Unequal rows (sample):</p>")
        rows = [
            [
                ", ".join(f"{k}={show_value(v)}" for k, v in s.key.items()),
                name,
                show_value(a, 60),
                show_value(b, 60),
            ]
            for s in pair.samples
            for name, (a, b) in s.columns.items()
        ]
        out.append(_table(["key", "column", pair.left, pair.right], rows, left=4))
    return "\n".join(out)


def _distribution_section(d: ScoreDistribution, threshold: float) -> str:
    out = [f"<h3>{_e(d.column)}</h3>"]
    if d.histogram_edges:
        png = _histogram_png(d)
        out.append(f"<img alt='{_e(d.column)} distribution' src='data:image/png;base64,{png}'>")
    names = ["rows", "nulls", "nan", "pos_inf", "neg_inf", "min", "mean", "max", "sampled"]
    quantile_names = list(QUANTILES)
    rows = [
        [side, *(show_number(s[n]) for n in names), *(show_number(s["quantiles"][q]) for q in quantile_names)]
        for side, s in d.sides.items()
    ]
    out.append(_table(["side", *names, *quantile_names], rows))
    comparisons = [
        [
            c["left"],
            c["right"],
            show_number(c["ks"]),
            show_number(c["psi"]),
            "-" if c["threshold_flips"] is None else f"{c['threshold_flips']:,} of {c['compared']:,}",
        ]
        for c in d.comparisons
    ]
    headers = ["left", "right", "KS", "PSI", f"decisions flipped at {threshold:g}"]
    out.append(_table(headers, comparisons, left=2))
    return "\n".join(out)


def _histogram_png(d: ScoreDistribution) -> str:
    """Overlaid per-side histograms (as shares of each side's sample), base64 PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Figure + Agg canvas directly: no pyplot global state, no display backend needed.
    fig = Figure(figsize=(7, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    edges = np.asarray(d.histogram_edges)
    # Distinct line styles keep identical distributions visible when they overlap exactly.
    for (side, counts), style in zip(d.histogram_counts.items(), ("-", "--", ":"), strict=False):
        counts = np.asarray(counts, dtype=float)
        if counts.sum():
            ax.stairs(counts / counts.sum(), edges, label=side, linewidth=1.8, linestyle=style)
    ax.set_xlabel(d.column)
    ax.set_ylabel("share of sampled rows")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
