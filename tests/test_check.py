"""``icl-gen check`` on real lm-eval per-sample logs (dummy model) and copies with planted changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lm_eval_runs import TASKS, cluster_by, planted_copy, samples_file, without_clusters

from icl_generalization.analysis.check_report import to_markdown
from icl_generalization.analysis.gate import (
    EXIT_CANNOT_JUDGE,
    EXIT_NO_REGRESSION,
    EXIT_REGRESSION,
    CheckConfig,
    cluster_paired_t,
    holm_adjust,
    mcnemar_exact,
    min_detectable_drop,
    run_check,
)
from icl_generalization.cli import main
from icl_generalization.core.errors import UserError
from icl_generalization.data.families import FAMILIES

CLOSED, ICL = TASKS
# The reversal curse's task version, as the dummy runs record it.
VERSION = FAMILIES["reversal_curse"].task_version


def _flip(task: str, count: int) -> Any:
    """Make the candidate lose ``count`` items of ``task`` that the baseline got right."""
    def edit(name: str, lines: list[dict[str, Any]]) -> None:
        if name != task:
            return
        right = [line for line in lines if line["acc"] == 1.0]
        assert len(right) >= count, "the baseline run has too few right answers to plant a drop"
        for line in right[:count]:
            line["acc"] = 0.0
    return edit


def _check(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_identical_runs_pass(dummy_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = planted_copy(dummy_run, tmp_path / "same")
    code, out, _ = _check(["--baseline", str(dummy_run), "--candidate", str(copy), "--out", str(tmp_path / "r")],
                          capsys)
    assert code == 0
    assert "**no regression** (exit 0)" in out
    report = json.loads((tmp_path / "r" / "check.json").read_text())
    assert report["exit_code"] == 0
    assert {t["task"]: (t["status"], t["n_paired"], t["losses"], t["wins"]) for t in report["tasks"]} == {
        CLOSED: ("ok", 24, 0, 0), ICL: ("ok", 24, 0, 0)}
    assert (tmp_path / "r" / "check.md").read_text() == out


def test_planted_drop_is_a_regression_naming_the_task(dummy_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    worse = planted_copy(dummy_run, tmp_path / "worse", edit_samples=_flip(CLOSED, 6))
    code, out, _ = _check(["--baseline", str(dummy_run), "--candidate", str(worse)], capsys)
    assert code == 1
    assert f"REGRESSION in {CLOSED}" in out
    report = run_check(dummy_run, worse)
    closed = next(t for t in report.tasks if t.task == CLOSED)
    assert (closed.status, closed.losses, closed.wins) == ("regression", 6, 0)
    assert closed.delta == pytest.approx(-6 / 24)
    # The log names each item's person: 24 items of 24 people, decided by the cluster-robust paired test.
    assert (closed.test, closed.clusters) == ("cluster-t", 24)
    assert closed.p_mcnemar == pytest.approx(1 / 64)
    assert closed.p_adjusted == pytest.approx(2 * closed.p_value)  # Holm over the two tasks
    assert next(t for t in report.tasks if t.task == ICL).status == "ok"


def test_small_drop_is_within_noise_and_tolerance_matters(dummy_run: Path, tmp_path: Path) -> None:
    one = planted_copy(dummy_run, tmp_path / "one", edit_samples=_flip(CLOSED, 1))
    report = run_check(dummy_run, one)
    assert report.exit_code == 0
    assert next(t for t in report.tasks if t.task == CLOSED).status == "drop-not-significant"
    # The same six lost items pass when the tolerated drop is larger than the drop.
    six = planted_copy(dummy_run, tmp_path / "six", edit_samples=_flip(CLOSED, 6))
    assert run_check(dummy_run, six, CheckConfig(max_drop=0.3)).exit_code == 0
    assert run_check(dummy_run, six, CheckConfig(max_drop=0.2)).exit_code == 1


def test_run_on_different_data_cannot_be_judged(dummy_run: Path, other_data_run: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _check(["--baseline", str(dummy_run), "--candidate", str(other_data_run)], capsys)
    assert code == EXIT_CANNOT_JUDGE
    assert "CANNOT JUDGE" in out and "dataset fingerprint" in out
    report = run_check(dummy_run, other_data_run)
    assert {t.status for t in report.tasks} == {"cannot-judge"}
    # Different data is never "allowed drift".
    assert run_check(dummy_run, other_data_run, CheckConfig(allow_drift=True)).exit_code == EXIT_CANNOT_JUDGE


def test_prompt_drift_is_drift_not_regression(dummy_run: Path, tmp_path: Path) -> None:
    def reword(name: str, lines: list[dict[str, Any]]) -> None:
        if name == ICL:
            for line in lines[:3]:
                line["prompt_hash"] = "0" * 64
                line["acc"] = 0.0
    drifted = planted_copy(dummy_run, tmp_path / "drift", edit_samples=reword)
    report = run_check(dummy_run, drifted)
    icl = next(t for t in report.tasks if t.task == ICL)
    assert icl.status == "cannot-judge" and any("prompt_hash on 3 of 24" in p for p in icl.problems)
    assert report.exit_code == EXIT_CANNOT_JUDGE
    # Allowed drift is compared on the paired items (three planted losses at most: not significant) and noted.
    allowed = run_check(dummy_run, drifted, CheckConfig(allow_drift=True))
    icl = next(t for t in allowed.tasks if t.task == ICL)
    assert icl.n_paired == 24 and icl.p_value is not None and icl.notes
    assert allowed.exit_code == EXIT_NO_REGRESSION


def test_missing_samples_file_cannot_be_judged(dummy_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    copy = planted_copy(dummy_run, tmp_path / "nosamples")
    samples_file(copy, ICL).unlink()
    report = run_check(dummy_run, copy)
    icl = next(t for t in report.tasks if t.task == ICL)
    assert icl.status == "cannot-judge" and report.exit_code == EXIT_CANNOT_JUDGE
    assert any(p.startswith("no per-sample log in the candidate") and p.endswith("rerun lm-eval with --log_samples")
               for p in icl.problems)
    code, out, _ = _check(["--baseline", str(dummy_run), "--candidate", str(copy)], capsys)
    assert code == EXIT_CANNOT_JUDGE
    assert f"- {ICL}:\n  - no per-sample log in the candidate" in out


def test_baseline_task_missing_from_the_candidate(dummy_run: Path, tmp_path: Path) -> None:
    def rename(data: dict[str, Any]) -> None:
        for section in ("results", "configs", "versions"):
            data[section] = {f"x_{k}": v for k, v in data[section].items()}
    renamed = planted_copy(dummy_run, tmp_path / "renamed", rename)
    report = run_check(dummy_run, renamed)
    assert report.exit_code == EXIT_CANNOT_JUDGE
    assert {t.task: t.problems for t in report.tasks} == {
        CLOSED: ("the candidate did not score this task",), ICL: ("the candidate did not score this task",)}
    assert any("not in the baseline" in n for n in report.notes)


def test_every_reason_is_listed(dummy_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several things wrong with one task: each is named, not only the first one found."""
    def bump_version(data: dict[str, Any]) -> None:
        data["versions"][CLOSED] = 2.0

    def damage(name: str, lines: list[dict[str, Any]]) -> None:
        if name == CLOSED:
            del lines[-2:]  # fewer items than the baseline, and than its own results file says
            lines[0]["prompt_hash"] = "0" * 64
            lines[1]["doc"]["id"] = "someone-else"
            lines[2]["acc"] = 0.5
    broken = planted_copy(dummy_run, tmp_path / "broken", bump_version, damage)
    report = run_check(dummy_run, broken)
    closed = next(t for t in report.tasks if t.task == CLOSED)
    assert closed.status == "cannot-judge" and report.exit_code == EXIT_CANNOT_JUDGE
    text = "\n".join(closed.problems)
    for expected in (f"task version {VERSION} -> 2.0", "prompt_hash on 1 of 21", "holds 22 items but its results file "
                     "reports 24", "did not score 3 of the baseline's 24 items", "scored 1 items the baseline did "
                     "not (someone-else)", "'acc' is not 0 or 1 for 1 items"):
        assert expected in text, text
    assert len(closed.problems) == 6
    code, out, _ = _check(["--baseline", str(dummy_run), "--candidate", str(broken)], capsys)
    assert code == EXIT_CANNOT_JUDGE and out.count("\n  - ") == 6


def test_a_regression_is_reported_beside_a_task_that_cannot_be_judged(dummy_run: Path, tmp_path: Path) -> None:
    worse = planted_copy(dummy_run, tmp_path / "worse", edit_samples=_flip(CLOSED, 6))
    samples_file(worse, ICL).unlink()
    report = run_check(dummy_run, worse)
    assert report.exit_code == EXIT_REGRESSION
    assert report.verdict == f"REGRESSION in {CLOSED}; cannot judge {ICL}"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1.5, -1.0, "1", True, None])
def test_a_per_sample_value_that_is_not_a_number_in_range(dummy_run: Path, tmp_path: Path, bad: Any) -> None:
    def plant(name: str, lines: list[dict[str, Any]]) -> None:
        if name == ICL:
            lines[4]["acc"] = bad
    copy = planted_copy(dummy_run, tmp_path / "bad", edit_samples=plant)
    report = run_check(dummy_run, copy)
    icl = next(t for t in report.tasks if t.task == ICL)
    assert icl.status == "cannot-judge" and report.exit_code == EXIT_CANNOT_JUDGE
    (problem,) = icl.problems
    assert problem.startswith("the candidate's per-sample log is invalid: ")
    assert ":5: not an lm-eval sample line: acc: expected " in problem


def test_the_same_run_on_both_sides_cannot_be_judged(dummy_run: Path, tmp_path: Path) -> None:
    (results,) = dummy_run.rglob("results_*.json")
    link = tmp_path / "link"
    link.symlink_to(dummy_run)
    for baseline, candidate in ((dummy_run, dummy_run), (dummy_run, results), (link, dummy_run)):
        report = run_check(baseline, candidate)
        assert report.exit_code == EXIT_CANNOT_JUDGE
        assert report.problems and "are the same run" in report.problems[0]
    # A copy is a separate run: identical scores are a legitimate pass (test_identical_runs_pass).


def test_statistics() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(1 / 64)
    assert mcnemar_exact(0, 6) == pytest.approx(1.0)
    assert mcnemar_exact(5, 5) == pytest.approx(0.623046875)
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


@pytest.mark.parametrize(("kwargs", "field"), [({"alpha": 0}, "alpha"), ({"max_drop": 1.5}, "max_drop"),
                                               ({"correction": "bonf"}, "correction"), ({"metric": ""}, "metric")])
def test_config_names_the_bad_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError, match=field):
        CheckConfig(**kwargs)


def test_ci_workflow_example_is_valid_and_runs_the_gate() -> None:
    import re
    import shlex

    import yaml

    from icl_generalization.cli import build_parser

    doc = (Path(__file__).resolve().parents[1] / "docs" / "ci.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    workflow = yaml.safe_load(block)
    steps = workflow["jobs"]["gate"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    evaluate = next(r for r in runs if "icl-gen eval" in r)
    assert "--log_samples" in evaluate and "--output_path results/candidate" in evaluate
    gate = next(r for r in runs if r.startswith("icl-gen check"))
    args = build_parser().parse_args(shlex.split(gate)[1:])
    assert (args.baseline, args.candidate, args.alpha, args.max_drop) == ("ci/baseline", "results/candidate",
                                                                          0.05, 0.02)
    assert any(s.get("if") == "always()" and "upload-artifact" in s.get("uses", "") for s in steps)


def _both(*edits: Any) -> Any:
    def edit(name: str, lines: list[dict[str, Any]]) -> None:
        for one in edits:
            one(name, lines)
    return edit


def _right_first(dummy_run: Path) -> dict[int, str]:
    """doc_id -> cluster: the closed-book task's first six right answers about one person, the rest spread over
    three others, so a planted drop of those six is one person's worth of evidence."""
    lines = [json.loads(line) for line in samples_file(dummy_run, CLOSED).read_text().splitlines()]
    right = [line["doc_id"] for line in lines if line["acc"] == 1.0][:6]
    others = [line["doc_id"] for line in lines if line["doc_id"] not in right]
    return {**dict.fromkeys(right, "p0"), **{d: f"p{1 + i % 3}" for i, d in enumerate(others)}}


def test_a_drop_within_one_cluster_is_one_piece_of_evidence(dummy_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Six lost items about one person: McNemar (independent items) calls it significant, the cluster test not."""
    people = _right_first(dummy_run)
    label = cluster_by(lambda line: people[line["doc_id"]])
    base = planted_copy(dummy_run, tmp_path / "base", edit_samples=label)
    worse = planted_copy(dummy_run, tmp_path / "worse", edit_samples=_both(label, _flip(CLOSED, 6)))
    report = run_check(base, worse)
    closed = next(t for t in report.tasks if t.task == CLOSED)
    assert (closed.losses, closed.clusters, closed.test) == (6, 4, "cluster-t")
    assert closed.p_mcnemar == pytest.approx(1 / 64)  # a regression by McNemar's count alone
    # Differences -1 on p0's six items, 0 elsewhere: mean -1/4, clustered SE 1/4 (by hand), t = -1 on 3 df.
    from scipy.stats import t
    assert closed.p_value == closed.p_cluster == pytest.approx(float(t.cdf(-1.0, 3)))
    assert closed.status == "drop-not-significant" and report.exit_code == EXIT_NO_REGRESSION
    assert closed.min_detectable_drop == pytest.approx(min_detectable_drop(4, 0.05))
    assert any("too small to gate on: with 24 items in 4 clusters" in n for n in closed.notes)
    code, out, _ = _check(["--baseline", str(base), "--candidate", str(worse)], capsys)
    assert code == EXIT_NO_REGRESSION and "| cluster-t |" in out and "| 4 |" in out
    # The report names the test and its library, and the detectable drop with the units it was computed over.
    assert f"| {closed.min_detectable_drop:.3f} (4 clusters) |" in out
    assert "statsmodels OLS, cov_type=cluster" in out and "statsmodels TTestPower" in out
    # The same six losses spread over 24 one-item clusters are six pieces of evidence: a regression.
    own = cluster_by(lambda line: f"item-{line['doc_id']}")
    spread = run_check(planted_copy(dummy_run, tmp_path / "b1", edit_samples=own),
                       planted_copy(dummy_run, tmp_path / "w1", edit_samples=_both(own, _flip(CLOSED, 6))))
    closed = next(t for t in spread.tasks if t.task == CLOSED)
    assert (closed.test, closed.clusters, closed.status) == ("cluster-t", 24, "regression")
    assert spread.exit_code == EXIT_REGRESSION


def test_logs_without_clusters_are_decided_by_mcnemar(dummy_run: Path, tmp_path: Path) -> None:
    old = planted_copy(dummy_run, tmp_path / "old", edit_samples=without_clusters)
    report = run_check(old, planted_copy(dummy_run, tmp_path / "worse",
                                         edit_samples=_both(without_clusters, _flip(CLOSED, 6))))
    closed = next(t for t in report.tasks if t.task == CLOSED)
    assert (closed.test, closed.clusters, closed.p_cluster) == ("mcnemar", None, None)
    assert closed.p_value == closed.p_mcnemar == pytest.approx(1 / 64)
    assert closed.min_detectable_drop == pytest.approx(min_detectable_drop(24, 0.05))
    assert any("too small to gate on: with 24 items it detects only drops of 0.215" in n for n in closed.notes)
    assert "| mcnemar | 0.0156 |" in to_markdown(report) and "| 0.215 (24 items) |" in to_markdown(report)
    # One person only: no cluster-robust test exists, and the report says McNemar decided regardless.
    one = cluster_by(lambda line: "p")
    report = run_check(planted_copy(dummy_run, tmp_path / "b1", edit_samples=one),
                       planted_copy(dummy_run, tmp_path / "w1", edit_samples=_both(one, _flip(CLOSED, 6))))
    closed = next(t for t in report.tasks if t.task == CLOSED)
    assert (closed.test, closed.clusters) == ("mcnemar", 1)
    assert any("McNemar's test decided" in n for n in closed.notes)
    assert any("cannot detect any drop" in n for n in closed.notes)


@pytest.mark.parametrize(("losses", "wins"), [(6, 0), (5, 2), (9, 4), (30, 12), (1, 0)])
def test_mcnemar_matches_statsmodels(losses: int, wins: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    two_sided = mcnemar([[50, losses], [wins, 40]], exact=True).pvalue
    assert mcnemar_exact(losses, wins) == pytest.approx(two_sided / 2)  # one-sided, losses > wins


def test_cluster_paired_t_matches_statsmodels() -> None:
    import numpy as np
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    clusters = rng.integers(0, 9, size=120)
    # Whole clusters tend to lose together: the case the test is for.
    diffs = -(rng.random(120) < 0.05 + 0.3 * (clusters % 3 == 0)).astype(float) + (rng.random(120) < 0.05)
    fit = sm.OLS(diffs, np.ones(120)).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    assert fit.tvalues[0] < 0
    expected = float(fit.pvalues[0]) / 2  # one-sided, in the direction of the drop
    assert cluster_paired_t(diffs.tolist(), [str(c) for c in clusters]) == pytest.approx(expected, rel=1e-9)
    assert cluster_paired_t([0.0, 0.0, 0.0], ["a", "b", "c"]) == 1.0  # nothing changed: no drop
    assert cluster_paired_t([-1.0, -1.0], ["a", "b"]) is None  # no spread: McNemar's count decides
    assert cluster_paired_t([-1.0, 0.0], ["a", "a"]) is None  # one cluster: no clustered error


def test_min_detectable_drop_has_the_power_it_claims() -> None:
    from statsmodels.stats.power import TTestPower

    for units in (2, 4, 24, 200):
        drop = min_detectable_drop(units, 0.05)
        assert drop is not None
        effect = (drop / (1 - drop)) ** 0.5  # a drop of units lost outright: sd sqrt(drop (1 - drop))
        assert TTestPower().power(effect, units, 0.05, alternative="larger") == pytest.approx(0.8, abs=1e-4)
    assert min_detectable_drop(1, 0.05) is None
    assert min_detectable_drop(200, 0.05) == pytest.approx(0.0302, abs=1e-3)  # a 200-item gate sees 3 points
