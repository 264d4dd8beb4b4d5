"""The paper's orderings checked against a hand-made leaderboard."""

from __future__ import annotations

from icl_generalization.analysis.leaderboard import Cell, Column, Leaderboard, Row
from icl_generalization.analysis.orderings import check_orderings, to_markdown

SPLITS = ("rephrase", "reversal", "syllogism", "category_holdout")
# condition -> accuracy per split (n = 100 each, so se = sqrt(p (1 - p) / 100))
SCORES = {
    "pretrained": (0.25, 0.25, 0.25, 0.25),
    "ICL": (0.90, 0.70, 0.60, 0.40),
    "FT": (0.95, 0.30, 0.50, 0.60),  # beats ICL on rephrase
    "augmented FT": (0.90, 0.80, 0.55, 0.95),  # holdout not harder than rephrase: the claim fails
}


def _board() -> Leaderboard:
    columns = tuple(Column("semantic", s) for s in SPLITS)
    rows = tuple(Row("m", None if c in ("pretrained", "ICL") else c, c) for c in SCORES)
    cells = {(row, col): Cell(value, (value * (1 - value) / 100) ** 0.5, 100, f"t_{col.split}", "run")
             for row in rows for col, value in zip(columns, SCORES[row.condition], strict=True)}
    return Leaderboard(metric="acc", rows=rows, columns=columns, cells=cells,
                       chance={c: 0.25 for c in columns}, fingerprints={"semantic": "f"}, runs=())


def test_semantic_claims_and_verdicts() -> None:
    verdicts = {(v["split"], v["claim"]): v for v in check_orderings(_board())}
    assert len(verdicts) == 4 + 4 + 1 + 3
    assert not verdicts[("rephrase", "ICL > FT")]["holds"]  # 0.90 vs 0.95
    assert verdicts[("reversal", "ICL > FT")]["holds"]
    assert verdicts[("reversal", "ICL > FT")]["difference"] == 0.4
    assert verdicts[("syllogism", "augmented FT >= ICL")]["holds"] is False
    assert verdicts[("reversal", "FT > chance")]["holds"]
    holdout = {c: verdicts[("category_holdout", f"{c}: category_holdout < rephrase")]["holds"]
               for c in ("ICL", "FT", "augmented FT")}
    assert holdout == {"ICL": True, "FT": True, "augmented FT": False}
    table = to_markdown(list(verdicts.values()))
    assert "| semantic | category_holdout | augmented FT: category_holdout < rephrase | 0.950 vs 0.900 |" in table


def test_claims_about_absent_conditions_are_left_out() -> None:
    board = _board()
    kept = tuple(r for r in board.rows if r.condition in ("pretrained", "ICL"))
    cells = {k: v for k, v in board.cells.items() if k[0] in kept}
    partial = Leaderboard(metric="acc", rows=kept, columns=board.columns, cells=cells, chance=board.chance,
                          fingerprints=board.fingerprints, runs=())
    claims = [v["claim"] for v in check_orderings(partial)]
    assert claims == ["ICL: category_holdout < rephrase"]
