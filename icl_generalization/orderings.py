"""The paper's expected orderings (PAPER.md, last table), checked against a measured leaderboard.

Each claim compares two conditions (or a condition and chance) on one split. The verdict compares point
estimates and reports the difference with its standard error, so a reader sees which verdicts are within
noise: a small model on shrunk data may not reproduce every ordering, and the report says which it did.
"""

from __future__ import annotations

import math
from typing import Any

from .compare import Leaderboard

SEMANTIC_SPLITS = ("rephrase", "reversal", "syllogism", "category_holdout")
# (split, left, relation, right); "chance" is the split's chance level. "~" means within 2 standard errors.
ORDERINGS: dict[str, list[tuple[str, str, str, str]]] = {
    "reversal_curse": [("p2d_reverse", "ICL", ">", "FT"), ("p2d_reverse", "augmented FT", ">", "FT"),
                       ("p2d_reverse", "FT", "<=", "chance"), ("p2d_reverse", "pretrained", "~", "chance"),
                       ("p2d", "FT", ">", "chance")],
    "simple_reversal": [("reversal", "augmented FT", ">", "ICL"), ("reversal", "ICL", ">", "FT"),
                        ("reversal", "pretrained", "~", "chance")],
    "syllogism": [("conclusion", "augmented FT", ">=", "ICL"), ("conclusion", "ICL", ">", "FT"),
                  ("conclusion", "FT", ">", "chance")],
    "semantic": [*((s, "ICL", ">", "FT") for s in SEMANTIC_SPLITS),
                 *((s, "augmented FT", ">=", "ICL") for s in SEMANTIC_SPLITS),
                 ("reversal", "FT", ">", "chance")],
}


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


def _holds(relation: str, diff: float, se: float) -> bool:
    if relation == ">":
        return diff > 0
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
        for split, left, relation, right in ORDERINGS.get(family, []):
            a, b = _value(board, family, split, left), _value(board, family, split, right)
            if a is None or b is None:
                continue
            diff, se = a[0] - b[0], math.hypot(a[1], b[1])
            verdicts.append({"family": family, "split": split, "claim": f"{left} {relation} {right}",
                             "left": round(a[0], 4), "right": round(b[0], 4), "difference": round(diff, 4),
                             "stderr": round(se, 4), "holds": _holds(relation, diff, se)})
    return verdicts


def to_markdown(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| family | split | expected (paper) | measured | difference ± se | reproduced |",
             "|---|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['family']} | {v['split']} | {v['claim']} | {v['left']:.3f} vs {v['right']:.3f} | "
                     f"{v['difference']:+.3f} ± {v['stderr']:.3f} | {'yes' if v['holds'] else '**no**'} |")
    return "\n".join(lines) + "\n"
