"""A self-contained HTML page (figures embedded as data URIs, no scripts, no external requests) and its
markdown twin, built from sections of text, tables and figures."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2430;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #d9dee7;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#5b6575;margin-top:0}table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #d9dee7;padding:.3em .6em;text-align:right}th{background:#f3f5f9}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}figcaption{color:#5b6575;font-size:.9em}
img{max-width:100%}.note{background:#fff8e6;border-left:4px solid #f0b400;padding:.5em .8em;margin:.8em 0}
.warn{background:#fdecec;border-left:4px solid #d33;padding:.5em .8em;margin:.8em 0}
code{background:#f3f5f9;padding:0 .25em}.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{flex:1 1 300px}
"""


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str = ""


@dataclass
class Figure:
    png: bytes
    caption: str
    name: str  # stable id, e.g. "cohort_flow"


@dataclass
class Section:
    title: str
    id: str
    blocks: list = field(default_factory=list)  # str (paragraph), Table, Figure, ("note"|"warn", str), list[Figure]


def fig_png(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _fmt(v: object) -> str:
    """A table cell: strings as they are (parameters, ids: pre-formatted by the caller), counts with thousands
    separators, measured floats with 2 decimals, small ones with 2 significant digits (never 0.00 for 0.0005)."""
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return ""
        if v != 0 and abs(v) < 0.01:
            return f"{v:.2g}"
        return f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in t.rows)
    cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(f: Figure) -> str:
    b64 = base64.b64encode(f.png).decode()
    return (f'<figure id="fig-{html.escape(f.name)}"><img alt="{html.escape(f.caption)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(f.caption)}</figcaption></figure>')


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class=sub>{html.escape(subtitle)}</p>",
             "<nav><ul>" + "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
             + "</ul></nav>"]
    for s in sections:
        parts.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, str):
                parts.append(f"<p>{html.escape(b)}</p>")
            elif isinstance(b, Table):
                parts.append(_table_html(b))
            elif isinstance(b, Figure):
                parts.append(_figure_html(b))
            elif isinstance(b, list):
                parts.append("<div class=grid>" + "".join(_figure_html(f) for f in b) + "</div>")
            elif isinstance(b, tuple):
                kind, text = b
                parts.append(f"<div class={kind}>{html.escape(text)}</div>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, subtitle: str, sections: list[Section], figure_dir: str = "figures") -> str:
    out = [f"# {title}", "", subtitle, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            figs = b if isinstance(b, list) else [b] if isinstance(b, Figure) else []
            if isinstance(b, str):
                out += [b, ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out.append("| " + " | ".join(map(str, b.header)) + " |")
                out.append("|" + "|".join("---" for _ in b.header) + "|")
                out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in b.rows]
                out.append("")
            elif isinstance(b, tuple):
                out += [f"> **{'Note' if b[0] == 'note' else 'Warning'}:** {b[1]}", ""]
            for f in figs:
                out += [f"![{f.caption}]({figure_dir}/{f.name}.png)", ""]
    return "\n".join(out)


def write_figures(sections: list[Section], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for s in sections:
        for b in s.blocks:
            for f in (b if isinstance(b, list) else [b] if isinstance(b, Figure) else []):
                (directory / f"{f.name}.png").write_bytes(f.png)
