"""The paper's expected orderings (PAPER.md, last table), checked against a measured leaderboard.

Each family states its claims (``Family.claims``, plain data in the data layer); this module evaluates them.
Each claim compares two conditions (or a condition and chance) on one split, or one condition on two splits.
The verdict compares point estimates and reports the difference with its standard error, so a reader sees
which verdicts are within noise: a small model on shrunk data may not reproduce every ordering, and the
report says which it did. The standard errors are the leaderboard's, clustered by fact where the runs logged
clusters (items about one person are one piece of evidence, not several); a verdict over a cell without them
says so (``stderr_kind`` binomial), since its noise band is then too narrow. The two sides' errors are combined
as if independent: conditions scored on the same items usually err together, so this overstates the noise of
the difference rather than hiding it.
"""

from __future__ import annotations

import math
from typing import Any

from icl_generalization.analysis.leaderboard import BINOMIAL, CLUSTERED, Leaderboard
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.family import Relation

NOISE_Z = 2.0  # a difference within this many standard errors of zero is within noise


def _value(board: Leaderboard, family: str, split: str, who: str) -> tuple[float, float, str] | None:
    """The score, its standard error and which kind it is; chance is exact (no error, nothing to cluster)."""
    col = next((c for c in board.columns if (c.family, c.split) == (family, split)), None)
    if col is None:
        return None
    if who == "chance":
        chance = board.chance.get(col)
        return (chance, 0.0, CLUSTERED) if chance is not None else None
    for (row, column), cell in board.cells.items():
        if column == col and row.condition == who:
            return cell.value, cell.stderr or 0.0, cell.stderr_kind
    return None


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


def check_orderings(board: Leaderboard) -> list[dict[str, Any]]:
    verdicts = []
    for family in board.families():
        for claim in (FAMILIES[family].claims if family in FAMILIES else ()):
            a = _value(board, family, claim.split, claim.left)
            b = _value(board, family, claim.right_split or claim.split, claim.right)
            if a is None or b is None:
                continue
            diff, se = a[0] - b[0], math.hypot(a[1], b[1])
            kind = CLUSTERED if a[2] == b[2] == CLUSTERED else BINOMIAL
            verdicts.append({"family": family, "split": claim.split, "claim": claim.text(), "relation": claim.relation,
                             "from_paper": claim.from_paper,
                             "left": round(a[0], 4), "right": round(b[0], 4), "difference": round(diff, 4),
                             "stderr": round(se, 4), "stderr_kind": kind, "within_noise": _within_noise(diff, se),
                             "holds": _holds(claim.relation, diff, se)})
    return verdicts


def to_markdown(verdicts: list[dict[str, Any]]) -> str:
    """One line per claim; a verdict within noise says so, whichever way the point estimates fell, and a claim the
    paper does not make for that family (the study's general ordering) is marked."""
    lines = ["| family | split | expected (paper) | measured | difference ± se | reproduced |",
             "|---|---|---|---|---|---|"]
    for v in verdicts:
        verdict = "yes" if v["holds"] else "**no**"
        if v["within_noise"] and v["relation"] != "~":  # for "~" within noise is what holds means
            verdict += " (within noise)"
        claim = v["claim"] if v.get("from_paper", True) else f"{v['claim']} (not in the paper)"
        lines.append(f"| {v['family']} | {v['split']} | {claim} | {v['left']:.3f} vs {v['right']:.3f} | "
                     f"{v['difference']:+.3f} ± {v['stderr']:.3f} ({v['stderr_kind']}) | {verdict} |")
    return "\n".join(lines) + "\n"
