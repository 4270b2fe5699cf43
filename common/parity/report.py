"""The parity report as text for the terminal and as ``parity.json`` / ``parity.html`` files.

``parity.json`` is for machines (CI gates, dashboards), ``parity.html`` for people, the
terminal summary for whoever ran the check. All three say the same things.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.parity.html import render_html
from common.parity.report_data import (
    ColumnResult,
    PairResult,
    ParityReport,
    SampleRow,
    ScoreDistribution,
    SideSummary,
    show_number,
    show_type,
    show_value,
)

__all__ = [
    "ColumnResult",
    "PairResult",
    "ParityReport",
    "SampleRow",
    "ScoreDistribution",
    "SideSummary",
    "format_summary",
    "table_row",
    "write_reports",
]

_WIDTH = 100

# Header, width and alignment of the per-pair table: 100 characters with a 16-wide verdict.
_TABLE = [
    ("column", 16, "<"),
    ("type", 17, "<"),
    ("compared", 11, ">"),
    ("unequal", 9, ">"),
    ("null≠", 7, ">"),
    ("max abs", 9, ">"),
    ("max ULP", 8, ">"),
    ("verdict", 16, "<"),
]


def _row(cells: list[str]) -> str:
    return table_row(cells, [(width, align) for _, width, align in _TABLE])


def table_row(cells: Sequence[str], layout: Sequence[tuple[int, str]]) -> str:
    """One table row; a cell wider than its column wraps onto the next lines, never cut."""
    wrapped = [
        textwrap.wrap(text, width, break_on_hyphens=False) or [""]
        for text, (width, _) in zip(cells, layout, strict=True)
    ]
    lines = []
    for i in range(max(len(w) for w in wrapped)):
        parts = [
            f"{(w[i] if i < len(w) else ''):{align}{width}}"
            for w, (width, align) in zip(wrapped, layout, strict=True)
        ]
        lines.append(" ".join(parts).rstrip())
    return "\n".join(lines)


def format_summary(report: ParityReport) -> str:
    """Readable terminal summary (fits 100 columns): tables per pair, keys, samples, verdict."""
    lines = [f"Parity of {len(report.sides)} outputs on key {', '.join(report.key)}"]
    for s in report.sides:
        lines.append(f"  {s.name:<10} {s.rows:>12,} rows in {s.files:,} files  {s.path}")
        lines += [f"  ! {problem}" for problem in s.problems()]
        lines += [f"      duplicated: {_key_text(x)}" for x in s.duplicate_examples]
    for pair in report.pairs:
        lines += ["", *_pair_lines(pair)]
    for d in report.distributions:
        lines += ["", *_distribution_lines(d, report.settings.threshold)]
    findings = report.reference_findings()
    if findings:
        lines += ["", f"Which side left the reference ({report.reference}):"]
        lines += [f"  {f}" for f in findings]
    problems = report.problems()
    lines.append("")
    lines.append("PARITY OK" if not problems else f"PARITY FAILED ({len(problems)} problems)")
    lines += [f"  - {p}" for p in problems]
    return "\n".join(part for line in lines for part in _fit(line))


def _pair_lines(pair: PairResult) -> list[str]:
    lines = [
        f"== {pair.name}: {pair.matched:,} keys compared, {pair.left_only:,} only in "
        f"{pair.left}, {pair.right_only:,} only in {pair.right}"
    ]
    for side, examples in ((pair.left, pair.left_only_examples), (pair.right, pair.right_only_examples)):
        lines += [f"  only in {side}: {_key_text(x)}" for x in examples]
    if pair.duplicate_keys_skipped:
        lines.append(f"  {pair.duplicate_keys_skipped:,} shared keys not compared: duplicated on a side")
    lines.append(_row([header for header, _, _ in _TABLE]))
    for c in pair.columns:
        counts = [c.compared, c.unequal, c.null_mismatches] if c.status == "compared" else [None] * 3
        lines.append(
            _row(
                [
                    c.name,
                    show_type(c),
                    *map(show_number, counts),
                    show_number(c.max_abs_diff),
                    show_number(c.max_ulps),
                    c.verdict,
                ]
            )
        )
    flips = [
        f"{c.name} {c.decision_flips / c.compared:.2%}"
        for c in pair.columns
        if c.decision_flips is not None and c.compared
    ]
    if flips:
        lines.append(f"  decisions flipped: {', '.join(flips)}")
    if pair.samples:
        lines.append(f"  unequal rows ({len(pair.samples)} shown):")
    for sample in pair.samples:
        lines.append(f"    {_key_text(sample.key)}")
        for name, (a, b) in sample.columns.items():
            lines.append(f"      {name}: {pair.left} {show_value(a)} vs {pair.right} {show_value(b)}")
    return lines


def _distribution_lines(d: ScoreDistribution, threshold: float) -> list[str]:
    lines = [f"-- distribution of {d.column} (p5 / p50 / p95, mean)"]
    for side, s in d.sides.items():
        q = s["quantiles"]
        lines.append(
            f"   {side:<10} {show_number(q['p5'])} / {show_number(q['p50'])} / "
            f"{show_number(q['p95'])}, {show_number(s['mean'])}"
        )
    for cmp in d.comparisons:
        flips, compared = cmp["threshold_flips"], cmp["compared"]
        share = f"{flips / compared:.2%}" if flips is not None and compared else "-"
        lines.append(
            f"   {cmp['left']} vs {cmp['right']}: KS={show_number(cmp['ks'])} "
            f"PSI={show_number(cmp['psi'])} flips at {threshold:g}: {share}"
        )
    return lines


def _fit(line: str) -> list[str]:
    """A line as lines of at most ``_WIDTH`` characters: table rows as they are (their cells wrap
    within their columns), longer text wrapped under its own indent."""
    parts = line.split("\n")
    if len(parts) > 1 or len(line) <= _WIDTH:
        return parts
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    return textwrap.wrap(line, _WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _key_text(key: dict[str, Any]) -> str:
    return " ".join(f"{k}={show_value(v, 24)}" for k, v in key.items())


def write_reports(report: ParityReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``parity.json`` and a self-contained ``parity.html`` into ``out_dir``.

    Returns:
        ``{"json": path, "html": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "parity.json", "html": out / "parity.html"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    return paths
