"""``index.html`` of a fleet parity run: one self-contained page (inline CSS, no scripts, nothing
loaded from the network) with a row per job and a link to each job's own ``parity.html``."""

from __future__ import annotations

import html

from common.parity.report_data import DIFFERS, WITHIN_TOLERANCE
from common.rollout.certificate import ERROR

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{color:#176b1e;font-weight:bold}.bad{color:#b00020;font-weight:bold}.err{color:#8a5a00;font-weight:bold}
"""
_HEADER = [
    "job",
    "verdict",
    "rows",
    "differing columns (rows)",
    "spark s",
    "spark rows/s",
    "ray s",
    "ray rows/s",
    "ray/spark speed-up",
    "report",
]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_fleet_html(rows, generated: str) -> str:
    """The page as one string; ``rows`` are ``FleetRow``s."""
    counts = {v: sum(r.verdict == v for r in rows) for v in (WITHIN_TOLERANCE, DIFFERS, ERROR)}
    css = {WITHIN_TOLERANCE: "ok", DIFFERS: "bad", ERROR: "err"}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fleet parity</title>",
        f"<style>{_CSS}</style></head><body><h1>Fleet parity</h1>",
        f"<p>{len(rows)} jobs, generated {_e(generated)}: "
        + ", ".join(f"<span class='{css[v]}'>{n} {_e(v)}</span>" for v, n in counts.items())
        + "</p>",
        "<table><tr>"
        + "".join(
            f"<th class='l'>{_e(h)}</th>" if i in (0, 1, 3, 9) else f"<th>{_e(h)}</th>"
            for i, h in enumerate(_HEADER)
        )
        + "</tr>",
    ]
    for r in rows:
        spark, ray = r.engines.get("spark", {}), r.engines.get("ray", {})
        if r.error:
            detail = _e(r.error)
        else:
            detail = (
                "<br>".join(
                    f"{_e(d['column'])}: {d['rows']:,} ({_e(d['pair'])})"
                    if d["rows"]
                    else f"{_e(d['column'])}: {_e(d['verdict'])} ({_e(d['pair'])})"
                    for d in r.differing_columns
                )
                or "none"
            )
        link = f"<a href='{_e(r.report)}'>parity.html</a>" if r.report else "-"
        cells = [
            f"<td class='l'><b>{_e(r.job)}</b><br><small>{_e(r.job_file)}</small></td>",
            f"<td class='l {css[r.verdict]}'>{_e(r.verdict)}</td>",
            f"<td>{_num(r.rows, ',')}</td>",
            f"<td class='l'>{detail}</td>",
            f"<td>{_num(spark.get('seconds'), '.2f')}</td>",
            f"<td>{_num(spark.get('rows_per_second'), ',.0f')}</td>",
            f"<td>{_num(ray.get('seconds'), '.2f')}</td>",
            f"<td>{_num(ray.get('rows_per_second'), ',.0f')}</td>",
            f"<td>{_num(r.ray_speedup, '.2f')}{'x' if r.ray_speedup else ''}</td>",
            f"<td class='l'>{link}</td>",
        ]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append(
        "</table><p><small>Seconds are whole runs, engine start included; rows/s leave the start out. "
        "Speed-up = Spark seconds / Ray seconds (above 1: Ray was faster), measured in this run.</small></p>"
    )
    parts.append("</body></html>\n")
    return "".join(parts)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)
