"""The leaderboard as one self-contained HTML page: inline style, figures embedded as base64 PNG, no
scripts and no external resources, so it opens from disk or a CI artifact in any browser."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compare import Leaderboard

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { background: #f0f0f0; }
tr.chance td { font-style: italic; color: #555; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
code { font-size: 90%; }
"""


def _table(board: Leaderboard) -> str:
    from .compare import format_cell

    families = board.families()
    head1 = '<th rowspan="2">model</th><th rowspan="2">condition</th>' + "".join(
        f'<th colspan="{len(board.columns_of(f))}">{escape(f)}</th>' for f in families)
    head2 = "".join(f"<th>{escape(c.split)}</th>" for c in board.columns)
    body = []
    for row in board.rows:
        model = row.model if not row.checkpoint else f"{row.model} + {row.checkpoint}"
        tds = "".join(
            f'<td class="num" data-column="{escape(c.label)}">{escape(format_cell(board.cells.get((row, c))))}</td>'
            for c in board.columns)
        body.append(f'<tr data-row="{escape(row.label)}"><td>{escape(model)}</td>'
                    f"<td>{escape(row.condition)}</td>{tds}</tr>")
    chance = "".join(f'<td class="num">{"–" if board.chance[c] is None else f"{board.chance[c]:.3f}"}</td>'
                     for c in board.columns)
    body.append(f'<tr class="chance"><td>chance</td><td></td>{chance}</tr>')
    return (f'<table id="leaderboard"><thead><tr>{head1}</tr><tr>{head2}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def to_html(board: Leaderboard, figures: dict[str, bytes]) -> str:
    figs = "".join(
        f'<figure><img alt="{escape(family)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{escape(family)}</figcaption></figure>" for family, png in figures.items())
    runs = "".join(f"<li><code>{escape(str(run.path))}</code>: {escape(run.label)}"
                   + (f" (checkpoint sha256 <code>{escape(run.checkpoint_sha256[:16])}</code>)"
                      if run.checkpoint_sha256 else "") + "</li>" for run in board.runs)
    prints = "".join(f"<li>{escape(f)}: <code>{escape((fp or 'unknown')[:16])}</code></li>"
                     for f, fp in board.fingerprints.items())
    notes = "".join(f"<li>{escape(n)}</li>" for n in board.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>icl-gen leaderboard</title><style>{STYLE}</style></head>
<body>
<h1>Leaderboard</h1>
<p>{escape(board.metric)}: mean ± standard error over the test items; dashed lines in the figures mark chance.</p>
{_table(board)}
<section id="figures">{figs}</section>
<h2>Dataset fingerprints</h2><ul>{prints}</ul>
<h2>Runs</h2><ul>{runs}</ul>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""
