"""The HTML page has one section per family, with only the rows evaluated on that family."""

from __future__ import annotations

import re

from icl_generalization.analysis.html_report import to_html
from icl_generalization.analysis.leaderboard import Cell, Column, Leaderboard, Row


def test_each_family_gets_its_own_table_with_its_own_rows() -> None:
    pre, ft_a, ft_b = Row("m", None, "pretrained"), Row("m", "a-ft", "FT"), Row("m", "b-ft", "FT")
    a, b1, b2 = Column("fam_a", "x"), Column("fam_b", "y"), Column("fam_b", "z")
    cells = {(pre, a): Cell(0.25, 0.04, 100, "t", "r"), (pre, b1): Cell(0.5, 0.05, 100, "t", "r"),
             (pre, b2): Cell(0.4, 0.05, 100, "t", "r"), (ft_a, a): Cell(0.9, 0.03, 100, "t", "r"),
             (ft_b, b1): Cell(0.7, 0.05, 100, "t", "r")}
    board = Leaderboard(metric="acc", rows=(pre, ft_a, ft_b), columns=(a, b1, b2), cells=cells,
                        chance={a: 0.25, b1: 0.5, b2: None}, fingerprints={"fam_a": "f" * 64, "fam_b": None},
                        runs=())
    page = to_html(board, {"fam_a": b"\x89PNG"})
    sections = dict(re.findall(r'<section class="family" id="family-(\w+)">(.*?)</section>', page, re.S))
    assert list(sections) == ["fam_a", "fam_b"]
    rows = {f: re.findall(r'<tr data-row="([^"]+)">', body) for f, body in sections.items()}
    assert rows == {"fam_a": ["m · pretrained", "m + a-ft · FT"], "fam_b": ["m · pretrained", "m + b-ft · FT"]}
    assert "<th>y</th><th>z</th>" in sections["fam_b"] and "<th>x</th>" not in sections["fam_b"]
    assert 'data-column="fam_b/z">–</td>' in sections["fam_b"]  # b-ft was not evaluated on z
    assert "<code>ffffffffffffffff</code>" in sections["fam_a"] and "<code>unknown</code>" in sections["fam_b"]
    assert '<img alt="fam_a" src="data:image/png;base64,iVBORw==">' in sections["fam_a"]
    assert "<img" not in sections["fam_b"]  # no figure given: no broken image


def test_every_name_from_the_data_is_escaped() -> None:
    """Quotes would end an attribute, tags would run script: names from results files show as text."""
    evil = '"><script>alert(1)</script>'
    row, col = Row(evil, evil, evil), Column(evil, evil)
    board = Leaderboard(metric="acc", rows=(row,), columns=(col,), cells={(row, col): Cell(0.5, 0.1, 10, evil, evil)},
                        chance={col: 0.25}, fingerprints={evil: evil}, runs=())
    page = to_html(board, {evil: b"\x89PNG"})
    assert "<script>" not in page and '"><script' not in page
    assert page.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;") >= 6  # family, split, model, row, alt
