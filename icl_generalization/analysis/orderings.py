"""The paper's expected orderings (PAPER.md, last table), checked against a measured leaderboard.

Each family states its claims (``Family.claims``, plain data in the data layer); this module evaluates them.
Each claim compares two conditions (or a condition and chance) on one split, or one condition on two splits.
The verdict compares point estimates and reports the difference with its standard error, so a reader sees
which verdicts are within noise: a small model on shrunk data may not reproduce every ordering, and the
report says which it did.
"""

from __future__ import annotations

import math
from typing import Any

from icl_generalization.analysis.leaderboard import Leaderboard
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.family import Relation


def _value(board: Leaderboard, family: str, split: str, who: str) -> tuple[float, float] | None:
    col = next((c for c in board.columns if (c.family, c.split) == (family, split)), None)
    if col is None:
        return None
    if who == "chance":
        chance = board.chance.get(col)
        return (chance, 0.0) if chance is not None else None
    for (row, column), cell in board.cells.items():
        if column == col and row.condition == who:
            return cell.value, cell.stderr or 0.0
    return None


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
        return abs(diff) <= 2 * se
    raise ValueError(f"unknown relation {relation!r}")


def check_orderings(board: Leaderboard) -> list[dict[str, Any]]:
    verdicts = []
    for family in board.families():
        for claim in (FAMILIES[family].claims if family in FAMILIES else ()):
            a = _value(board, family, claim.split, claim.left)
            b = _value(board, family, claim.right_split or claim.split, claim.right)
            if a is None or b is None:
                continue
            diff, se = a[0] - b[0], math.hypot(a[1], b[1])
            verdicts.append({"family": family, "split": claim.split, "claim": claim.text(),
                             "left": round(a[0], 4), "right": round(b[0], 4), "difference": round(diff, 4),
                             "stderr": round(se, 4), "holds": _holds(claim.relation, diff, se)})
    return verdicts


def to_markdown(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| family | split | expected (paper) | measured | difference ± se | reproduced |",
             "|---|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['family']} | {v['split']} | {v['claim']} | {v['left']:.3f} vs {v['right']:.3f} | "
                     f"{v['difference']:+.3f} ± {v['stderr']:.3f} | {'yes' if v['holds'] else '**no**'} |")
    return "\n".join(lines) + "\n"
