"""compare's view of accuracy against tokens added, from crafted copies of a real lm-eval run."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runs import TASKS, planted_copy, without_clusters

from icl_generalization.analysis.compare import to_markdown, tokens_csv, write_leaderboard
from icl_generalization.analysis.html_report import to_html
from icl_generalization.analysis.leaderboard import build_leaderboard
from icl_generalization.analysis.results import load_runs
from icl_generalization.analysis.tokens_view import to_markdown as tokens_markdown
from icl_generalization.analysis.tokens_view import tokens_figure

CLOSED, ICL = TASKS


def _finetuned(name: str, kind: str, acc: float, strategy: str | None, tokens: int, budget: int | None) -> Any:
    """A closed-book evaluation of a checkpoint whose manifest recorded what its augmentation added."""
    def edit(data: dict[str, Any]) -> None:
        data["config"].update(checkpoint=name, checkpoint_kind=kind, checkpoint_sha256="ab" * 32,
                              checkpoint_strategy=strategy, checkpoint_tokens_added=tokens,
                              checkpoint_token_budget=budget)
        for section in ("results", "configs", "versions"):
            data[section].pop(ICL)
        data["results"][CLOSED]["acc,none"] = acc
        data["results"][CLOSED]["acc_stderr,none"] = (acc * (1 - acc) / 24) ** 0.5
    return edit


@pytest.fixture(scope="module")
def strategy_runs(dummy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("strategies")
    crafted = [("ft", "ft", 0.125, None, 0, None), ("aug", "aug_ft", 0.5, "local", 5210, None),
               ("rev", "aug_ft", 0.75, "reverse_entity", 4001, 4000), ("rep", "aug_ft", 0.25, "repeat", 4000, 4000)]
    return [planted_copy(dummy_run, root / "base", edit_samples=without_clusters)] + [
        planted_copy(dummy_run, root / name, _finetuned(f"rc-{name}", *rest), without_clusters)
        for name, *rest in crafted]


def test_strategy_rows_are_their_own_conditions_with_their_tokens(strategy_runs: list[Path]) -> None:
    board = build_leaderboard(load_runs(strategy_runs))
    conditions = [r.condition for r in board.rows]
    # The paper's augmented FT keeps its condition (the orderings read it); budgeted strategies get their own.
    assert conditions == ["pretrained", "ICL", "FT", "augmented FT", "FT + repeat", "FT + reverse_entity"]
    assert sorted(board.tokens_added.values()) == [0, 4000, 4001, 5210]
    table = tokens_markdown(board)
    lines = [line for line in table.splitlines() if line.startswith("| dummy")]
    # Fewest tokens first; pretrained and ICL rows recorded no augmentation and are not in the view.
    assert [line.split(" | ")[1:3] for line in lines] == [["FT", "0"], ["FT + repeat", "4,000"],
                                                          ["FT + reverse_entity", "4,001"],
                                                          ["augmented FT", "5,210"]]
    assert "| dummy + rc-rev | FT + reverse_entity | 4,001 | 0.750 ±" in table
    assert "## Accuracy against tokens added" in to_markdown(board)
    rows = list(csv.DictReader(io.StringIO(tokens_csv(board))))
    assert {(r["condition"], int(r["tokens added"]), float(r["acc"])) for r in rows} == {
        ("FT", 0, 0.125), ("augmented FT", 5210, 0.5), ("FT + reverse_entity", 4001, 0.75), ("FT + repeat", 4000, 0.25)}


def test_the_view_renders_and_is_written_beside_the_leaderboard(strategy_runs: list[Path], tmp_path: Path) -> None:
    board = build_leaderboard(load_runs(strategy_runs))
    png = tokens_figure(board, "reversal_curse")
    assert png.startswith(b"\x89PNG") and png == tokens_figure(board, "reversal_curse")  # same board, same bytes
    written = write_leaderboard(board, tmp_path)
    assert written["tokens png:reversal_curse"].read_bytes() == png
    assert written["tokens csv"].is_file()
    assert "![reversal_curse: tokens added](tokens-reversal_curse.png)" in written["markdown"].read_text()
    # The HTML page carries the same view: the table in tokens order and the figure embedded.
    page = written["html"].read_text()
    [section] = re.findall(r'<section class="tokens" id="tokens-added">(.*?)</section>', page, re.S)
    assert re.findall(r'data-tokens="(\d+)"', section) == ["0", "4000", "4001", "5210"]
    assert f"base64,{base64.b64encode(png).decode()}" in section


def test_runs_without_a_record_leave_the_view_out(dummy_run: Path) -> None:
    board = build_leaderboard(load_runs([dummy_run]))
    assert board.tokens_added == {} and tokens_markdown(board) == ""
    assert "tokens added" not in to_markdown(board)
    assert 'id="tokens-added"' not in to_html(board, {})
