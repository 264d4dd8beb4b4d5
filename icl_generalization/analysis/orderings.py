"""The paper's expected orderings (PAPER.md, last table), checked against a measured leaderboard.

Each family states its claims (``Family.claims``, plain data in the data layer); this module evaluates them,
per model (a leaderboard may hold several), for every pair of rows with the two conditions a claim names.
Each claim compares two conditions (or a condition and chance) on one split, or one condition on two splits.
The verdict compares point estimates and reports the difference two ways, so a reader sees which verdicts are
within noise: a small model on shrunk data may not reproduce every ordering, and the report says which it did.

- ``difference ± se``: the leaderboard's standard errors, clustered by fact where the runs logged clusters
  (items about one person are one piece of evidence, not several), combined as if independent. A verdict over
  a cell without them says so (``stderr_kind`` binomial), since its noise band is then too narrow. Conditions
  scored on the same items usually err together, so this overstates the noise of the difference; "within
  noise" (and the "~" relation) is read from it, as before.
- the 95% confidence interval of the difference from a cluster bootstrap of the per-sample logs
  (``analysis/bootstrap.py``): paired when both cells scored the same items, which the combined error cannot
  be. Without a log on both sides the verdict says "no CI (samples not logged)" rather than inventing one.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from icl_generalization.analysis.bootstrap import BootstrapConfig, DifferenceCI, ItemScores, difference_ci, legend
from icl_generalization.analysis.leaderboard import BINOMIAL, CLUSTERED, Column, Leaderboard
from icl_generalization.analysis.safe_text import csv_text, markdown_text
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.family import Relation

NOISE_Z = 2.0  # a difference within this many standard errors of zero is within noise


@dataclass(frozen=True)
class Side:
    """One side of a claim: a row's cell, or chance (a constant)."""

    label: str
    value: float
    stderr: float
    stderr_kind: str
    items: ItemScores | str | float | None  # what the bootstrap resamples (chance: the constant itself)


def _column(board: Leaderboard, family: str, split: str) -> Column | None:
    return next((c for c in board.columns if (c.family, c.split) == (family, split)), None)


def _sides(board: Leaderboard, model: str, col: Column, who: str) -> list[Side]:
    """Every row of ``model`` in condition ``who`` with a cell in ``col``; chance is exact (no error, nothing to
    cluster, and a constant in the bootstrap)."""
    if who == "chance":
        chance = board.chance.get(col)
        return [] if chance is None else [Side("chance", chance, 0.0, CLUSTERED, chance)]
    sides = []
    for row in board.rows:
        cell = board.cells.get((row, col))
        if row.model == model and row.condition == who and cell is not None:
            sides.append(Side(row.label, cell.value, cell.stderr or 0.0, cell.stderr_kind, board.items.get((row, col))))
    return sides


def _within_noise(diff: float, se: float) -> bool:
    return abs(diff) <= NOISE_Z * se


def _holds(relation: Relation, diff: float, se: float) -> bool:
    if relation == ">":
        return diff > 0
    if relation == "<":
        return diff < 0
    if relation == ">=":
        return diff >= 0
    if relation == "<=":
        return diff <= 0
    if relation == "~":
        return _within_noise(diff, se)
    raise ValueError(f"unknown relation {relation!r}")


def _ci_fields(ci: DifferenceCI | str) -> dict[str, Any]:
    if isinstance(ci, str):
        return {"ci_low": None, "ci_high": None, "ci_method": None, "ci": ci}
    return {"ci_low": round(ci.low, 4), "ci_high": round(ci.high, 4), "ci_method": ci.method, "ci": ci.text()}


@dataclass(frozen=True)
class Orderings:
    """The verdicts on a leaderboard, with the bootstrap settings their intervals were drawn with."""

    verdicts: list[dict[str, Any]]
    bootstrap: BootstrapConfig


def evaluate(board: Leaderboard, bootstrap: BootstrapConfig | None = None) -> Orderings:
    bootstrap = bootstrap or BootstrapConfig()
    return Orderings(check_orderings(board, bootstrap), bootstrap)


def check_orderings(board: Leaderboard, bootstrap: BootstrapConfig | None = None) -> list[dict[str, Any]]:
    bootstrap = bootstrap or BootstrapConfig()
    verdicts = []
    models = list(dict.fromkeys(row.model for row in board.rows))
    for family in board.families():
        for claim in (FAMILIES[family].claims if family in FAMILIES else ()):
            left_col = _column(board, family, claim.split)
            right_col = _column(board, family, claim.right_split or claim.split)
            if left_col is None or right_col is None:
                continue
            for model in models:
                for a in _sides(board, model, left_col, claim.left):
                    for b in _sides(board, model, right_col, claim.right):
                        diff, se = a.value - b.value, math.hypot(a.stderr, b.stderr)
                        kind = CLUSTERED if a.stderr_kind == b.stderr_kind == CLUSTERED else BINOMIAL
                        verdicts.append({
                            "model": model, "family": family, "split": claim.split, "claim": claim.text(),
                            "relation": claim.relation, "from_paper": claim.from_paper,
                            "left_row": a.label, "right_row": b.label,
                            "left": round(a.value, 4), "right": round(b.value, 4), "difference": round(diff, 4),
                            "stderr": round(se, 4), "stderr_kind": kind, "within_noise": _within_noise(diff, se),
                            "holds": _holds(claim.relation, diff, se),
                            **_ci_fields(difference_ci(a.items, b.items, bootstrap))})
    return verdicts


def to_markdown(verdicts: list[dict[str, Any]], bootstrap: BootstrapConfig | None = None) -> str:
    """One line per claim; a verdict within noise says so, whichever way the point estimates fell. Names from
    results files (the model) go through ``markdown_text``. With ``bootstrap``, a line saying how the intervals
    were drawn follows the table."""
    lines = ["| model | family | split | expected (paper) | measured | difference ± se | reproduced | "
             "95% CI of the difference |",
             "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        verdict = "yes" if v["holds"] else "**no**"
        if v["within_noise"] and v["relation"] != "~":  # for "~" within noise is what holds means
            verdict += " (within noise)"
        claim = v["claim"] if v.get("from_paper", True) else f"{v['claim']} (not in the paper)"
        lines.append(f"| {markdown_text(v['model'])} | {v['family']} | {v['split']} | {claim} | "
                     f"{v['left']:.3f} vs {v['right']:.3f} | {v['difference']:+.3f} ± {v['stderr']:.3f} "
                     f"({v['stderr_kind']}) | {verdict} | {v['ci']} |")  # our own text: numbers and a method
    if bootstrap is not None:
        lines += ["", legend(bootstrap)]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("model", "family", "split", "claim", "relation", "left_row", "right_row", "left", "right",
              "difference", "stderr", "stderr_kind", "within_noise", "holds", "ci_low", "ci_high", "ci_method", "ci")


def to_csv(verdicts: list[dict[str, Any]]) -> str:
    """One line per verdict at the verdicts' precision; an empty ``ci_low``/``ci_high`` has its reason in ``ci``.
    Text cells (names from the results) are neutralized against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for v in verdicts:
        writer.writerow([csv_text(v[f]) if isinstance(v[f], str) else "" if v[f] is None else v[f]
                         for f in CSV_FIELDS])
    return buffer.getvalue()
