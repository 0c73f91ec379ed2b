"""Render the report (verdicts, sections, notebooks) as one standalone HTML page and as
Markdown. The HTML embeds its figures as data URIs, so the file alone is the report; the
Markdown points at the PNG copies in the figures folder beside it."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from analysis.report_sections import Section
from analysis.verdicts import Verdict

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
table.verdicts td.status { font-weight: bold; text-transform: uppercase; white-space: nowrap; }
td.pass { background: #d9f2d9; } td.fail { background: #f7d4d4; }
td.inconclusive { background: #f7ecc9; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 900px; }
p.absent { color: #555; font-style: italic; }
"""


def fmt(value: object) -> str:
    """A table cell: floats to 3 significant digits, null as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _html_table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(frame: pl.DataFrame) -> str:
    def cell(v: object) -> str:
        return fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.rows()]
    return "\n".join(lines)


def verdict_frame(verdicts: Sequence[Verdict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "claim": [v.claim for v in verdicts],
            "theory": [v.theory for v in verdicts],
            "measured": [v.measured for v in verdicts],
            "verdict": [v.status for v in verdicts],
            "why": [v.reason for v in verdicts],
        },
        schema={c: pl.String for c in ("claim", "theory", "measured", "verdict", "why")},
    )


def _html_verdicts(verdicts: Sequence[Verdict]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(v.claim)}</td><td>{html.escape(v.theory)}</td>"
        f"<td>{html.escape(v.measured)}</td>"
        f'<td class="status {v.status}">{v.status}</td><td>{html.escape(v.reason)}</td>'
        "</tr>"
        for v in verdicts
    )
    head = "".join(f"<th>{h}</th>" for h in ("claim", "theory", "measured", "verdict", "why"))
    return (
        f'<table class="verdicts" id="verdicts"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _absent_line(absent: Sequence[str]) -> str:
    return "Not in these results: " + "; ".join(absent) + "." if absent else ""


def render_html(
    title: str,
    subtitle: str,
    verdicts: Sequence[Verdict],
    sections: Sequence[Section],
    figure_files: dict[str, Path],
    extra_tables: Sequence[tuple[str, pl.DataFrame]],
    notebooks_html: Sequence[str],
    absent: Sequence[str],
) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(subtitle)}</p>"]
    parts.append("<h2>Verdicts</h2>")
    parts.append(_html_verdicts(verdicts) if verdicts else "<p>No claim can be judged.</p>")
    if any(s.figures for s in sections):
        parts.append("<h2>Figures</h2>")
    for sec in sections:
        if not sec.figures:
            continue
        parts.append(f"<h3>{html.escape(sec.title)}</h3>")
        if sec.intro:
            parts.append(f"<p>{html.escape(sec.intro)}</p>")
        for f in sec.figures:
            data = base64.b64encode(figure_files[f.name].read_bytes()).decode()
            parts.append(
                f'<figure class="figure" id="fig-{html.escape(f.name)}">'
                f'<img src="data:image/png;base64,{data}" alt="{html.escape(f.name)}"/>'
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            )
    tables = [(f"{s.title}: {t.title}", t.frame) for s in sections for t in s.tables]
    tables += list(extra_tables)
    if tables:
        parts.append("<h2>Tables</h2>")
    for name, frame in tables:
        parts.append(f"<h3>{html.escape(name)}</h3>{_html_table(frame)}")
    for nb in notebooks_html:
        parts.append(nb)
    if absent:
        parts.append(f'<p class="absent" id="absent">{html.escape(_absent_line(absent))}</p>')
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def render_markdown(
    title: str,
    subtitle: str,
    verdicts: Sequence[Verdict],
    sections: Sequence[Section],
    figure_rel: dict[str, str],
    extra_tables: Sequence[tuple[str, pl.DataFrame]],
    absent: Sequence[str],
) -> str:
    out = [f"# {title}", "", subtitle, "", "## Verdicts", ""]
    out.append(_md_table(verdict_frame(verdicts)) if verdicts else "No claim can be judged.")
    if any(s.figures for s in sections):
        out += ["", "## Figures"]
    for sec in sections:
        if not sec.figures:
            continue
        out += ["", f"### {sec.title}", ""] + ([sec.intro, ""] if sec.intro else [])
        for f in sec.figures:
            out += [f"![{f.name}]({figure_rel[f.name]})", "", f"*{f.caption}*", ""]
    tables = [(f"{s.title}: {t.title}", t.frame) for s in sections for t in s.tables]
    tables += list(extra_tables)
    if tables:
        out += ["", "## Tables"]
    for name, frame in tables:
        out += ["", f"### {name}", "", _md_table(frame)]
    if absent:
        out += ["", _absent_line(absent)]
    return "\n".join(out) + "\n"
