"""``icl-gen compare``'s outputs: the leaderboard as markdown, CSV, JSON, figures and an HTML page in one folder,
and with it the paper's orderings (each difference with its bootstrap interval) in the same files and
``orderings.csv``.

The forgetting controls get their own section (markdown, HTML), columns appended after the families' (CSV) and
``controls`` entries (JSON).

Every name in them comes from results files, so it goes through ``safe_text`` on its way into a file name, a
CSV cell or markdown (the HTML page escapes its own).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

from icl_generalization.analysis.html_report import to_html
from icl_generalization.analysis.leaderboard import (
    CONTROL_LEGEND,
    STDERR_LEGEND,
    Leaderboard,
    Row,
    format_cell,
    format_change,
)
from icl_generalization.analysis.orderings import Orderings
from icl_generalization.analysis.orderings import to_csv as orderings_csv
from icl_generalization.analysis.orderings import to_markdown as orderings_markdown
from icl_generalization.analysis.plots import family_figure
from icl_generalization.analysis.safe_text import csv_text, inside, markdown_code, markdown_text, unique_slugs
from icl_generalization.analysis.tokens_view import families_with_tokens, rows_with_tokens, tokens_figure
from icl_generalization.analysis.tokens_view import to_markdown as tokens_markdown
from icl_generalization.core.paths import atomic_write_bytes, atomic_write_text

MARKER = "leaderboard.json"  # a folder holding it is ours to replace


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def to_markdown(board: Leaderboard, figures: dict[str, str] | None = None, orderings: Orderings | None = None,
                token_figures: dict[str, str] | None = None) -> str:
    """One table per family (splits as columns), a chance row, the orderings' verdicts when given, accuracy
    against tokens added (where the checkpoints recorded it), then provenance and notes."""
    lines = [f"# Leaderboard ({board.metric}, mean ± standard error)", "", STDERR_LEGEND, ""]
    for family in board.families():
        cols = board.columns_of(family)
        rows = [r for r in board.rows if any((r, c) in board.cells for c in cols)]
        fp = board.fingerprints.get(family)
        lines += [f"## {markdown_text(family)}", "",
                  f"dataset fingerprint {markdown_code(fp[:16] if fp else 'unknown')}", ""]
        lines.append("| model | condition | " + " | ".join(markdown_text(c.split) for c in cols) + " |")
        lines.append("|---|---|" + "---:|" * len(cols))
        for row in rows:
            cells = " | ".join(format_cell(board.cells.get((row, c))) for c in cols)
            lines.append(f"| {markdown_text(row.model_label)} | {markdown_text(row.condition)} | {cells} |")
        lines.append("| *chance* | | " + " | ".join(_fmt(board.chance[c]) for c in cols) + " |")
        counts = sorted({board.cells[r, c].n for r in rows for c in cols if (r, c) in board.cells})
        lines += ["", f"items per cell: {', '.join(map(str, counts))}", ""]
        if figures and family in figures:
            lines += [f"![{markdown_text(family)}]({figures[family]})", ""]
    if orderings is not None:
        lines += ["## The paper's orderings", "",
                  orderings_markdown(orderings.verdicts, orderings.bootstrap) if orderings.verdicts else
                  "None of the paper's claims compares conditions present here.\n"]
    tokens = tokens_markdown(board, token_figures)
    if tokens:
        lines += ["## Accuracy against tokens added", "",
                  "Tokens each finetuned row's augmentation added to the training data (the base model's tokenizer; "
                  "0 for plain FT). `FT + NAME` rows are strategies cut to a matched token budget.", "", tokens]
    lines += _controls_markdown(board)
    lines += ["## Runs", ""]
    for run in board.runs:
        sha = f", checkpoint sha256 {run.checkpoint_sha256[:16]}" if run.checkpoint_sha256 else ""
        lines.append(f"- {markdown_code(str(run.path))}: {markdown_text(f'{run.label} ({run.model_type}{sha})')}")
    if board.notes:
        lines += ["", "## Notes", ""] + [f"- {markdown_text(note)}" for note in board.notes]
    return "\n".join(lines) + "\n"


def _controls_markdown(board: Leaderboard) -> list[str]:
    """The forgetting-control section: per control, each row's accuracy and its change against pretrained."""
    names = board.control_names()
    if not names:
        return []
    lines = ["## Forgetting control", "", CONTROL_LEGEND, ""]
    for name in names:
        fingerprint, source = board.control_sources.get(name, (None, None))
        lines.append(f"- {markdown_text(name)}: facts from {markdown_text(source or 'an unnamed source')}, "
                     f"fingerprint {markdown_code(fingerprint[:16] if fingerprint else 'unknown')}")
    header = " | ".join(f"{markdown_text(n)} | {markdown_text(n)}: change vs pretrained" for n in names)
    lines += ["", f"| model | condition | {header} |", "|---|---|" + "---:|---:|" * len(names)]
    for row in board.rows:
        if not any((row, n) in board.controls for n in names):
            continue
        cells = " | ".join(f"{format_cell(board.controls.get((row, n)))} | "
                           f"{format_change(board.control_changes.get((row, n)))}" for n in names)
        lines.append(f"| {markdown_text(row.model_label)} | {markdown_text(row.condition)} | {cells} |")
    lines.append("| *chance* | | " + " | ".join(f"{_fmt(board.control_chance.get(n))} | " for n in names) + " |")
    return [*lines, ""]


def to_csv(board: Leaderboard) -> str:
    """The table as CSV at full precision: one line per row; value, stderr and n columns per family/split, then
    (appended, so that readers of the older columns by position keep working) which standard error each shows
    and over how many clusters.

    Text cells (names from the results) are neutralized against formula injection; numbers stay numbers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["model", "checkpoint", "condition"]
    for col in board.columns:
        header += [f"{col.label} {board.metric}", f"{col.label} stderr", f"{col.label} n"]
    header += [f"{col.label} {suffix}" for col in board.columns for suffix in ("stderr kind", "clusters")]
    controls = board.control_names()
    header += [f"control/{name} {suffix}" for name in controls
               for suffix in (board.metric, "stderr", "n", "change", "change stderr", "change kind")]
    writer.writerow([csv_text(name) for name in header])
    for row in board.rows:
        line: list[str | float | int] = [csv_text(row.model), csv_text(row.checkpoint or ""), csv_text(row.condition)]
        for col in board.columns:
            cell = board.cells.get((row, col))
            line += ["", "", ""] if cell is None else [cell.value, "" if cell.stderr is None else cell.stderr, cell.n]
        for col in board.columns:
            cell = board.cells.get((row, col))
            line += ["", ""] if cell is None else [cell.stderr_kind, "" if cell.clusters is None else cell.clusters]
        for name in controls:
            control, change = board.controls.get((row, name)), board.control_changes.get((row, name))
            line += ["", "", ""] if control is None else \
                [control.value, "" if control.stderr is None else control.stderr, control.n]
            line += ["", "", ""] if change is None else \
                [change.value, "" if change.stderr is None else change.stderr, change.label()]
        writer.writerow(line)
    chance: list[str | float | int] = ["chance", "", ""]
    for col in board.columns:
        value = board.chance[col]
        chance += ["" if value is None else value, "", ""]
    chance += ["", ""] * len(board.columns)
    for name in controls:
        value = board.control_chance.get(name)
        chance += ["" if value is None else value, "", "", "", "", ""]
    writer.writerow(chance)
    return buffer.getvalue()


def tokens_csv(board: Leaderboard) -> str:
    """Accuracy against tokens added, one line per row and split (long form, for plotting elsewhere)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "checkpoint", "condition", "family", "split", "tokens added", board.metric, "stderr",
                     "n"])
    for family in families_with_tokens(board):
        for row in rows_with_tokens(board, family):
            for col in board.columns_of(family):
                cell = board.cells.get((row, col))
                if cell is not None:
                    writer.writerow([csv_text(row.model), csv_text(row.checkpoint or ""), csv_text(row.condition),
                                     csv_text(family), csv_text(col.split), board.tokens_added[row], cell.value,
                                     "" if cell.stderr is None else cell.stderr, cell.n])
    return buffer.getvalue()


def to_json(board: Leaderboard, orderings: Orderings | None = None) -> str:
    cells = [{"model": r.model, "checkpoint": r.checkpoint, "condition": r.condition, "family": c.family,
              "split": c.split, **asdict(cell)} for (r, c), cell in board.cells.items()]
    payload = {
        "metric": board.metric,
        "rows": [{"label": r.label, **asdict(r)} for r in board.rows],
        "columns": [asdict(c) for c in board.columns],
        "cells": cells,
        "chance": {c.label: board.chance[c] for c in board.columns},
        "fingerprints": board.fingerprints,
        "runs": [{"path": str(run.path), "model": run.model, "checkpoint": run.checkpoint,
                  "checkpoint_kind": run.checkpoint_kind, "checkpoint_sha256": run.checkpoint_sha256,
                  "tasks": sorted(run.tasks)} for run in board.runs],
        "notes": list(board.notes),
        "tokens_added": [{"model": r.model, "checkpoint": r.checkpoint, "condition": r.condition, "tokens": n}
                         for r, n in board.tokens_added.items()],
        "controls": [{"model": r.model, "checkpoint": r.checkpoint, "condition": r.condition, "control": name,
                      **asdict(cell), "change": _change_json(board, r, name)}
                     for (r, name), cell in board.controls.items()],
        "control_sources": {name: {"fingerprint": fp, "source": source}
                            for name, (fp, source) in board.control_sources.items()},
    }
    if orderings is not None:
        payload["orderings"] = orderings.verdicts
        payload["bootstrap"] = asdict(orderings.bootstrap)
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def _change_json(board: Leaderboard, row: Row, control: str) -> dict[str, object] | None:
    change = board.control_changes.get((row, control))
    return None if change is None else asdict(change)


def figure_names(board: Leaderboard) -> dict[str, str]:
    """Family -> its PNG file name: a slug, never the raw name (a family named ``../../x`` stays in the folder)."""
    return {family: f"{stem}.png" for family, stem in unique_slugs(board.families()).items()}


def token_figure_names(board: Leaderboard) -> dict[str, str]:
    """Family -> the PNG of its accuracy against tokens added (families whose rows recorded tokens)."""
    stems = unique_slugs(board.families())
    return {family: f"tokens-{stems[family]}.png" for family in families_with_tokens(board)}


def write_leaderboard(board: Leaderboard, out: Path, orderings: Orderings | None = None) -> dict[str, Path]:
    """Write markdown, CSV, JSON, one PNG per family (and one of accuracy against tokens added, where recorded)
    and the self-contained HTML page into ``out`` (with ``orderings``: also in those, and as ``orderings.csv``),
    each through a temporary file and a rename. The caller owns ``out`` (``core.outputs.claim_folder`` refuses a
    folder of the user's and removes files of an earlier comparison that this one did not rewrite)."""
    out = Path(out)
    figures = {family: family_figure(board, family) for family in board.families()}
    names = figure_names(board)
    for family, png in figures.items():
        atomic_write_bytes(inside(out, names[family]), png)
    token_names = token_figure_names(board)
    token_figures = {family: tokens_figure(board, family) for family in token_names}
    for family, name in token_names.items():
        atomic_write_bytes(inside(out, name), token_figures[family])
    atomic_write_text(out / "leaderboard.md", to_markdown(board, names, orderings, token_names))
    atomic_write_text(out / "leaderboard.csv", to_csv(board))
    atomic_write_text(out / "leaderboard.html", to_html(board, figures, orderings, token_figures))
    atomic_write_text(out / MARKER, to_json(board, orderings))
    written = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv",
               "html": out / "leaderboard.html", "json": out / MARKER}
    if orderings is not None:
        atomic_write_text(out / "orderings.csv", orderings_csv(orderings.verdicts))
        written["orderings csv"] = out / "orderings.csv"
    if token_names:
        atomic_write_text(out / "tokens_added.csv", tokens_csv(board))
        written["tokens csv"] = out / "tokens_added.csv"
    written.update({f"png:{family}": out / name for family, name in names.items()})
    written.update({f"tokens png:{family}": out / name for family, name in token_names.items()})
    return written
