"""The paper's orderings checked against a hand-made leaderboard."""

from __future__ import annotations

from dataclasses import replace

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


def test_within_noise_uses_the_clustered_standard_error() -> None:
    """ICL 0.70 vs FT 0.30 on reversal: far apart by binomial errors, within noise over a few people."""
    board = _board()
    by_condition = {row.condition: row for row in board.rows}
    reversal = next(c for c in board.columns if c.split == "reversal")

    def verdict(cells: dict[tuple[Row, Column], Cell]) -> dict[str, object]:
        changed = Leaderboard(metric="acc", rows=board.rows, columns=board.columns, cells=cells,
                              chance=board.chance, fingerprints=board.fingerprints, runs=())
        return next(v for v in check_orderings(changed) if (v["split"], v["claim"]) == ("reversal", "ICL > FT"))

    binomial = verdict(board.cells)
    assert (binomial["stderr_kind"], binomial["within_noise"], binomial["holds"]) == ("binomial", False, True)
    cells = dict(board.cells)
    for condition in ("ICL", "FT"):
        key = (by_condition[condition], reversal)
        cells[key] = replace(cells[key], stderr=0.15, stderr_kind="clustered", clusters=5)
    clustered = verdict(cells)
    # hypot(0.15, 0.15) = 0.212: the difference 0.4 is within two of them.
    assert (clustered["stderr_kind"], clustered["within_noise"], clustered["holds"]) == ("clustered", True, True)
    assert clustered["stderr"] == 0.2121
    assert "| +0.400 ± 0.212 (clustered) | yes (within noise) |" in to_markdown([clustered])
    # One side clustered, the other not: the combined error is not fully clustered, and says so.
    cells[by_condition["FT"], reversal] = board.cells[by_condition["FT"], reversal]
    assert verdict(cells)["stderr_kind"] == "binomial"


def test_each_model_is_judged_on_its_own_rows() -> None:
    """Two models on one board: a claim is checked per model, never across them; without logs, no interval."""
    board = _board()
    other = {Row("n", r.checkpoint, r.condition): r for r in board.rows}
    cells = {**board.cells, **{(new, col): replace(board.cells[old, col], value=1 - board.cells[old, col].value)
                               for new, old in other.items() for col in board.columns}}
    both = Leaderboard(metric="acc", rows=(*board.rows, *other), columns=board.columns, cells=cells,
                       chance=board.chance, fingerprints=board.fingerprints, runs=())
    reversal = {v["model"]: v for v in check_orderings(both) if (v["split"], v["claim"]) == ("reversal", "ICL > FT")}
    assert {m: (v["left_row"], v["difference"], v["holds"]) for m, v in reversal.items()} == {
        "m": ("m · ICL", 0.4, True), "n": ("n · ICL", -0.4, False)}
    assert reversal["m"]["ci"] == "no CI (samples not logged)" and reversal["m"]["ci_low"] is None
    assert "| n | semantic | reversal | ICL > FT | 0.300 vs 0.700 |" in to_markdown(list(reversal.values()))


def test_a_claim_the_paper_does_not_make_is_marked() -> None:
    # Process knowledge is in the paper's appendix without results: its claims are the study's general ones.
    columns = (Column("process", "held_out"),)
    rows = (Row("m", None, "ICL"), Row("m", "ft", "FT"))
    cells = {(row, columns[0]): Cell(value, 0.03, 80, "t", "run") for row, value in zip(rows, (0.6, 0.2), strict=True)}
    board = Leaderboard(metric="acc", rows=rows, columns=columns, cells=cells, chance={columns[0]: 0.125},
                        fingerprints={"process": "f"}, runs=())
    verdicts = check_orderings(board)
    assert [(v["claim"], v["from_paper"], v["holds"]) for v in verdicts] == [("ICL > FT", False, True)]
    assert "| m | process | held_out | ICL > FT (not in the paper) | 0.600 vs 0.200 |" in to_markdown(verdicts)
    assert "(not in the paper)" not in to_markdown(check_orderings(_board()))
