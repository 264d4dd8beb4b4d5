"""``icl-gen compare``: a leaderboard of models x conditions over family x split, from lm-eval results.

Rows are named from the results' own config: the model (``pretrained``), the checkpoint the adapter loader
records (``checkpoint``, ``checkpoint_kind``), and the condition each task's provenance records. Numbers
from different data are never put side by side: every family must carry one dataset fingerprint and every
task one version across all the runs, or the comparison is refused with the offending runs named.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from icl_generalization.analysis.results import Run, TaskResult, chance_level
from icl_generalization.core.errors import UserError

CONDITIONS = ("pretrained", "ICL", "FT", "augmented FT")
KIND_TO_CONDITION = {"ft": "FT", "aug_ft": "augmented FT"}
METRICS = ("acc", "acc_norm")
CONTAMINATION_ALPHA = 0.05
MARKER = "leaderboard.json"  # a folder holding it is ours to replace


@dataclass(frozen=True)
class Row:
    model: str
    checkpoint: str | None
    condition: str

    @property
    def label(self) -> str:
        base = self.model if not self.checkpoint else f"{self.model} + {self.checkpoint}"
        return f"{base} · {self.condition}"


@dataclass(frozen=True)
class Column:
    family: str
    split: str

    @property
    def label(self) -> str:
        return f"{self.family}/{self.split}"


@dataclass(frozen=True)
class Cell:
    value: float
    stderr: float | None
    n: int
    task: str
    run: str
    # Pretrained rows only: one-sided binomial p-value that the unexposed model beats chance.
    above_chance_p: float | None = None
    # Distinct closed-book prompts among the n items (None in results older than provenance ``n_prompts``).
    prompts: int | None = None

    @property
    def contaminated(self) -> bool:
        return self.above_chance_p is not None and self.above_chance_p < CONTAMINATION_ALPHA


@dataclass(frozen=True)
class Leaderboard:
    metric: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    cells: dict[tuple[Row, Column], Cell]
    chance: dict[Column, float | None]
    fingerprints: dict[str, str | None]
    runs: tuple[Run, ...]
    notes: tuple[str, ...] = field(default=())

    def families(self) -> list[str]:
        return list(dict.fromkeys(c.family for c in self.columns))

    def columns_of(self, family: str) -> list[Column]:
        return [c for c in self.columns if c.family == family]


def condition_of(run: Run, task: TaskResult) -> str:
    """pretrained / ICL / FT / augmented FT, from the task's condition and the checkpoint's kind."""
    if task.condition == "icl":
        return "ICL"
    if task.condition != "closed_book":
        raise UserError(f"{run.path}: task {task.name} records an unknown condition {task.condition!r}")
    if run.checkpoint is None:
        return "pretrained"
    # An adapter given to lm-eval directly (peft=) carries no kind; it is a finetuned model all the same.
    return KIND_TO_CONDITION.get(run.checkpoint_kind or "ft", f"finetuned ({run.checkpoint_kind})")


def _check_same_data(entries: Sequence[tuple[Run, TaskResult]]) -> None:
    """Refuse different fingerprints within a family and different versions of one task, naming them."""
    problems = []
    by_family: dict[str, dict[str, list[str]]] = {}
    by_task: dict[str, dict[str, list[str]]] = {}
    for run, task in entries:
        where = f"{run.label} ({run.path})"
        if task.fingerprint:
            by_family.setdefault(str(task.family), {}).setdefault(task.fingerprint, []).append(where)
        by_task.setdefault(task.name, {}).setdefault(task.version, []).append(where)
    for family, seen in sorted(by_family.items()):
        if len(seen) > 1:
            listed = "; ".join(f"{fp[:12]} in {', '.join(sorted(set(w)))}" for fp, w in sorted(seen.items()))
            problems.append(f"{family} was evaluated on different data (dataset fingerprints {listed})")
    for name, seen in sorted(by_task.items()):
        if len(seen) > 1:
            listed = "; ".join(f"version {v} in {', '.join(sorted(set(w)))}" for v, w in sorted(seen.items()))
            problems.append(f"task {name} has different versions ({listed})")
    if problems:
        raise UserError("cannot put these results side by side: " + " | ".join(problems))


def _column_order(columns: Iterable[Column]) -> list[Column]:
    from icl_generalization.data.families import FAMILIES

    families = list(FAMILIES)

    def key(col: Column) -> tuple[int, str, int, str]:
        known = FAMILIES.get(col.family)
        f_index = families.index(col.family) if known else len(families)
        s_index = known.splits.index(col.split) if known and col.split in known.splits else 99
        return f_index, col.family, s_index, col.split

    return sorted(set(columns), key=key)


def _column_chance(col: Column, tasks: Sequence[TaskResult]) -> float | None:
    """Chance from the first task of the column that records it or logged its samples (same items)."""
    for task in tasks:
        if (task.family, task.split) == (col.family, col.split) and \
                ("chance" in task.provenance or task.samples_file is not None):
            return chance_level(task)
    return None


def _prompts_among(n: int, provenance: Mapping[str, Any]) -> int | None:
    """Distinct prompts among ``n`` scored items: the split's share of distinct prompts, scaled to the items a
    ``--limit`` kept (an estimate there, exact for whole splits)."""
    prompts, items = provenance.get("n_prompts"), provenance.get("n_items")
    if not prompts or not items:
        return None
    return max(1, min(n, round(n * int(prompts) / int(items))))


def _flag_contamination(cells: dict[tuple[Row, Column], Cell], chance: dict[Column, float | None]) -> list[str]:
    """The pretrained closed-book scores double as the contamination check: a split the unexposed model
    answers significantly above chance (one-sided binomial test) is guessable without the training data.

    Items that share a prompt are not independent: after the same prompt the model ranks the same words the
    same way, so a split of 53 items on 19 prompts holds about 19 observations, not 53. The test counts
    distinct prompts as its trials (the accuracy times the prompts as its successes), which is conservative
    and, when every item has its own prompt, the plain test over items. With several gold answers per item
    the guessing rate varies by item; the mean rate makes the test approximate there."""
    from scipy.stats import binomtest

    notes = []
    for (row, col), cell in list(cells.items()):
        rate = chance.get(col)
        if row.condition != "pretrained" or rate is None or not 0 < rate < 1 or cell.n < 1:
            continue
        trials = cell.prompts or cell.n  # _prompts_among keeps it within 1..n
        p = float(binomtest(round(cell.value * trials), trials, rate, alternative="greater").pvalue)
        cells[row, col] = replace(cell, above_chance_p=p)
        if p < CONTAMINATION_ALPHA:
            over = f" over {trials} distinct prompts" if trials < cell.n else ""
            notes.append(f"† {row.label}, {col.label}: the pretrained model scores {cell.value:.3f} against chance "
                         f"{rate:.3f} (binomial p = {p:.3g}{over}): these answers are guessable without the "
                         f"training data")
    return notes


def build_leaderboard(runs: Sequence[Run], metric: str = "acc") -> Leaderboard:
    if metric not in METRICS:
        raise UserError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    entries = [(run, task) for run in runs for task in run.tasks.values() if task.family and task.split]
    skipped = sorted({name for run in runs for name, t in run.tasks.items() if not (t.family and t.split)})
    if not entries:
        raise UserError("none of the results holds an icl-gen task (icl_gen_*); nothing to compare")
    _check_same_data(entries)
    notes = [f"skipped tasks that are not icl-gen tasks: {', '.join(skipped)}"] if skipped else []
    cells: dict[tuple[Row, Column], Cell] = {}
    for run, task in entries:  # oldest first: a later run of the same row and task replaces the earlier
        value = task.value(metric)
        if value is None:
            raise UserError(f"{run.path}: task {task.name} has no {metric!r} score")
        row = Row(run.model, run.checkpoint, condition_of(run, task))
        col = Column(str(task.family), str(task.split))
        if (row, col) in cells:
            notes.append(f"{row.label}, {col.label}: {cells[row, col].run} superseded by the later {run.path}")
        cells[row, col] = Cell(value, task.stderr(metric), task.n, task.name, str(run.path),
                               prompts=_prompts_among(task.n, task.provenance))
    columns = _column_order(col for _, col in cells)
    chance = {col: _column_chance(col, [t for _, t in entries]) for col in columns}
    notes += _flag_contamination(cells, chance)
    cond_index = {c: i for i, c in enumerate(CONDITIONS)}
    rows = sorted({row for row, _ in cells},
                  key=lambda r: (r.model, cond_index.get(r.condition, len(CONDITIONS)), r.checkpoint or ""))
    fingerprints = {str(t.family): t.fingerprint for _, t in entries}
    return Leaderboard(metric, tuple(rows), tuple(columns), cells, chance, fingerprints, tuple(runs), tuple(notes))


def format_cell(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    text = f"{cell.value:.3f} ± {cell.stderr:.3f}" if cell.stderr is not None else f"{cell.value:.3f}"
    return f"{text} †" if cell.contaminated else text


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def to_markdown(board: Leaderboard, figures: dict[str, str] | None = None) -> str:
    """One table per family (splits as columns), a chance row, then provenance and notes."""
    lines = [f"# Leaderboard ({board.metric}, mean ± standard error)", ""]
    for family in board.families():
        cols = board.columns_of(family)
        rows = [r for r in board.rows if any((r, c) in board.cells for c in cols)]
        fp = board.fingerprints.get(family)
        lines += [f"## {family}", "", f"dataset fingerprint `{fp[:16] if fp else 'unknown'}`", ""]
        lines.append("| model | condition | " + " | ".join(c.split for c in cols) + " |")
        lines.append("|---|---|" + "---:|" * len(cols))
        for row in rows:
            model = row.model if not row.checkpoint else f"{row.model} + {row.checkpoint}"
            cells = " | ".join(format_cell(board.cells.get((row, c))) for c in cols)
            lines.append(f"| {model} | {row.condition} | {cells} |")
        lines.append("| *chance* | | " + " | ".join(_fmt(board.chance[c]) for c in cols) + " |")
        counts = sorted({board.cells[r, c].n for r in rows for c in cols if (r, c) in board.cells})
        lines += ["", f"items per cell: {', '.join(map(str, counts))}", ""]
        if figures and family in figures:
            lines += [f"![{family}]({figures[family]})", ""]
    lines += ["## Runs", ""]
    for run in board.runs:
        sha = f", checkpoint sha256 {run.checkpoint_sha256[:16]}" if run.checkpoint_sha256 else ""
        lines.append(f"- `{run.path}`: {run.label} ({run.model_type}{sha})")
    if board.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in board.notes]
    return "\n".join(lines) + "\n"


def to_csv(board: Leaderboard) -> str:
    """The table as CSV at full precision: one line per row; value, stderr and n columns per family/split."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["model", "checkpoint", "condition"]
    for col in board.columns:
        header += [f"{col.label} {board.metric}", f"{col.label} stderr", f"{col.label} n"]
    writer.writerow(header)
    for row in board.rows:
        line: list[Any] = [row.model, row.checkpoint or "", row.condition]
        for col in board.columns:
            cell = board.cells.get((row, col))
            line += ["", "", ""] if cell is None else [cell.value, "" if cell.stderr is None else cell.stderr, cell.n]
        writer.writerow(line)
    chance: list[Any] = ["chance", "", ""]
    for col in board.columns:
        value = board.chance[col]
        chance += ["" if value is None else value, "", ""]
    writer.writerow(chance)
    return buffer.getvalue()


def to_json(board: Leaderboard) -> str:
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
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def write_leaderboard(board: Leaderboard, out: Path) -> dict[str, Path]:
    """Write markdown, CSV, JSON, one PNG per family and the self-contained HTML page into ``out``, each
    through a temporary file and a rename. The caller owns ``out`` (``core.outputs.claim_folder`` refuses a
    folder of the user's and removes files of an earlier comparison that this one did not rewrite)."""
    from icl_generalization.analysis.html_report import to_html
    from icl_generalization.analysis.plots import family_figure
    from icl_generalization.core.paths import atomic_write_bytes, atomic_write_text

    out = Path(out)
    figures = {family: family_figure(board, family) for family in board.families()}
    names = {family: f"{family}.png" for family in figures}
    for family, png in figures.items():
        atomic_write_bytes(out / names[family], png)
    atomic_write_text(out / "leaderboard.md", to_markdown(board, names))
    atomic_write_text(out / "leaderboard.csv", to_csv(board))
    atomic_write_text(out / "leaderboard.html", to_html(board, figures))
    atomic_write_text(out / MARKER, to_json(board))
    written = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv",
               "html": out / "leaderboard.html", "json": out / MARKER}
    written.update({f"png:{family}": out / name for family, name in names.items()})
    return written
