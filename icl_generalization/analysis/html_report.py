"""The leaderboard as one self-contained HTML page: inline style, figures embedded as base64 PNG, no
scripts and no external resources, so it opens from disk or a CI artifact in any browser."""

from __future__ import annotations

import base64
from html import escape

from icl_generalization.analysis.bootstrap import legend
from icl_generalization.analysis.leaderboard import CONTROL_LEGEND, Leaderboard, Row, format_cell, format_change
from icl_generalization.analysis.orderings import Orderings
from icl_generalization.analysis.tokens_view import families_with_tokens, rows_with_tokens

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { background: #f0f0f0; }
tr.chance td { font-style: italic; color: #555; }
figure { margin: 0.5em 0 1.5em 0; }
img { max-width: 100%; height: auto; }
code { font-size: 90%; }
"""


def _row(row: Row, cells: str) -> str:
    """A table row of one leaderboard row: its model and condition, then ``cells`` (already escaped HTML)."""
    return (f'<tr data-row="{escape(row.label)}"><td>{escape(row.model_label)}</td>'
            f"<td>{escape(row.condition)}</td>{cells}</tr>")


def _table(board: Leaderboard, family: str) -> str:
    """One family's table: only the rows with a score in it (a finetuned checkpoint usually covers one)."""
    columns = board.columns_of(family)
    head = "<th>model</th><th>condition</th>" + "".join(f"<th>{escape(c.split)}</th>" for c in columns)
    body = []
    for row in board.rows:
        if not any((row, c) in board.cells for c in columns):
            continue
        tds = "".join(
            f'<td class="num" data-column="{escape(c.label)}">{escape(format_cell(board.cells.get((row, c))))}</td>'
            for c in columns)
        body.append(_row(row, tds))
    chance = "".join(f'<td class="num">{"–" if board.chance[c] is None else f"{board.chance[c]:.3f}"}</td>'
                     for c in columns)
    body.append(f'<tr class="chance"><td>chance</td><td></td>{chance}</tr>')
    return (f'<table class="leaderboard" data-family="{escape(family)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _figure(alt: str, png: bytes | None) -> str:
    return "" if png is None else (
        f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>')


def _family_section(board: Leaderboard, family: str, png: bytes | None) -> str:
    fingerprint = (board.fingerprints.get(family) or "unknown")[:16]
    figure = _figure(family, png)
    return (f'<section class="family" id="family-{escape(family)}"><h2>{escape(family)}</h2>'
            f"<p>dataset fingerprint <code>{escape(fingerprint)}</code></p>{_table(board, family)}{figure}</section>")


def _orderings_section(orderings: Orderings | None) -> str:
    """The paper's claims, one line each, with the difference's bootstrap interval (or why there is none)."""
    if orderings is None or not orderings.verdicts:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("model", "family", "split", "expected (paper)", "measured",
                                             "difference ± se", "reproduced", "95% CI of the difference"))
    body = []
    for v in orderings.verdicts:
        reproduced = ("yes" if v["holds"] else "no") + (
            " (within noise)" if v["within_noise"] and v["relation"] != "~" else "")
        cells = (escape(v["model"]), escape(v["family"]), escape(v["split"]), escape(v["claim"]),
                 f"{v['left']:.3f} vs {v['right']:.3f}",
                 f"{v['difference']:+.3f} ± {v['stderr']:.3f} ({escape(v['stderr_kind'])})", reproduced,
                 escape(v["ci"]))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<section class="orderings"><h2>The paper\'s orderings</h2><table class="orderings"><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(body)}</tbody></table><p>{escape(legend(orderings.bootstrap))}</p>"
            "</section>")


def _controls_section(board: Leaderboard) -> str:
    """Each forgetting control's accuracy per row and its change against the same model's pretrained score."""
    names = board.control_names()
    if not names:
        return ""
    recorded = {n: board.control_sources.get(n, (None, None)) for n in names}
    sources = "".join(f"<li>{escape(n)}: facts from {escape(source or 'an unnamed source')}, fingerprint "
                      f"<code>{escape((fingerprint or 'unknown')[:16])}</code></li>"
                      for n, (fingerprint, source) in recorded.items())
    head = "<th>model</th><th>condition</th>" + "".join(
        f"<th>{escape(n)}</th><th>{escape(n)}: change vs pretrained</th>" for n in names)
    body = []
    for row in board.rows:
        if not any((row, n) in board.controls for n in names):
            continue
        tds = "".join(
            f'<td class="num" data-control="{escape(n)}">{escape(format_cell(board.controls.get((row, n))))}</td>'
            f'<td class="num" data-change="{escape(n)}">'
            f"{escape(format_change(board.control_changes.get((row, n))))}</td>" for n in names)
        body.append(_row(row, tds))
    rates = [board.control_chance.get(n) for n in names]
    chance = "".join(f'<td class="num">{"–" if r is None else f"{r:.3f}"}</td><td></td>' for r in rates)
    body.append(f'<tr class="chance"><td>chance</td><td></td>{chance}</tr>')
    return (f'<section class="controls" id="forgetting-control"><h2>Forgetting control</h2>'
            f"<p>{escape(CONTROL_LEGEND)}</p><ul>{sources}</ul>"
            f'<table class="controls"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></section>')


def _tokens_section(board: Leaderboard, figures: dict[str, bytes]) -> str:
    """Per family whose checkpoints recorded it: accuracy per split against the tokens each method added."""
    parts = []
    for family in families_with_tokens(board):
        columns = board.columns_of(family)
        head = "<th>model</th><th>condition</th><th>tokens added</th>" + "".join(
            f"<th>{escape(c.split)}</th>" for c in columns)
        body = "".join(
            _row(row, f'<td class="num" data-tokens="{board.tokens_added[row]}">{board.tokens_added[row]:,}</td>'
                 + "".join(f'<td class="num">{escape(format_cell(board.cells.get((row, c))))}</td>' for c in columns))
            for row in rows_with_tokens(board, family))
        parts.append(f'<h3>{escape(family)}</h3><table class="tokens" data-family="{escape(family)}"><thead><tr>'
                     f"{head}</tr></thead><tbody>{body}</tbody></table>"
                     f"{_figure(f'{family}: accuracy against tokens added', figures.get(family))}")
    if not parts:
        return ""
    return ('<section class="tokens" id="tokens-added"><h2>Accuracy against tokens added</h2><p>Tokens each '
            "finetuned row's augmentation added to the training data (0 for plain FT); <code>FT + NAME</code> rows "
            f"are strategies cut to a matched token budget.</p>{''.join(parts)}</section>")


def to_html(board: Leaderboard, figures: dict[str, bytes], orderings: Orderings | None = None,
            token_figures: dict[str, bytes] | None = None) -> str:
    sections = "".join(_family_section(board, family, figures.get(family)) for family in board.families())
    sections += _orderings_section(orderings)
    sections += _tokens_section(board, token_figures or {})
    sections += _controls_section(board)
    runs = "".join(f"<li><code>{escape(str(run.path))}</code>: {escape(run.label)}"
                   + (f" (checkpoint sha256 <code>{escape(run.checkpoint_sha256[:16])}</code>)"
                      if run.checkpoint_sha256 else "") + "</li>" for run in board.runs)
    notes = "".join(f"<li>{escape(n)}</li>" for n in board.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>icl-gen leaderboard</title><style>{STYLE}</style></head>
<body>
<h1>Leaderboard</h1>
<p>{escape(board.metric)}: mean ± standard error over the test items; dashed lines in the figures mark chance.
One section per dataset family, with the rows that were evaluated on it.</p>
{sections}
<h2>Runs</h2><ul>{runs}</ul>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""
