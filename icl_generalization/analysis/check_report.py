"""The gate's report: markdown for people (stdout, CI job summaries), JSON for machines, written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from icl_generalization.analysis.gate import CheckReport, TaskCheck
from icl_generalization.analysis.safe_text import markdown_code, markdown_text
from icl_generalization.core.paths import atomic_write_text


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _detectable(task: TaskCheck) -> str:
    if task.power_units is None:
        return "–"
    return f"{_num(task.min_detectable_drop)} ({task.power_units})"


def to_markdown(report: CheckReport) -> str:
    """The verdict, one table line per task, then every reason a task could not be judged, per task."""
    cfg = report.config
    lines = [
        "# icl-gen check", "",
        f"**{markdown_text(report.verdict)}** (exit {report.exit_code})", "",
        f"baseline {markdown_code(report.baseline)}, candidate {markdown_code(report.candidate)}; metric "
        f"{markdown_code(cfg.metric)}; a regression is a paired drop above {cfg.max_drop} with p < {cfg.alpha} "
        f"({cfg.correction} correction, statsmodels multipletests) in the task's deciding test (column *test*): "
        "`cluster-t` when the logs name each item's cluster (the fact it tests), a paired t-test on the per-item "
        "differences with the standard error clustered by fact (statsmodels OLS, cov_type=cluster, G − 1 degrees "
        "of freedom); else `mcnemar`, McNemar's exact test on the lost/won pairs (one-sided, scipy binomtest). "
        "*detectable* is the smallest drop the task detects with 80% power at alpha (statsmodels TTestPower over "
        "the units named beside it: clusters, or items when none are logged)", "",
        "| task | status | paired items | clusters | baseline | candidate | Δ | lost | won | test | p | p adj. | "
        "detectable |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for t in report.tasks:
        lines.append(f"| {markdown_text(t.task)} | {t.status} | {t.n_paired} | {t.clusters or '–'} | "
                     f"{_num(t.baseline)} | {_num(t.candidate)} | {_num(t.delta, True)} | {t.losses} | {t.wins} | "
                     f"{t.test or '–'} | {_p(t.p_value)} | {_p(t.p_adjusted)} | {_detectable(t)} |")
    if report.problems:
        lines += ["", "## Cannot judge the comparison", ""]
        lines += [f"- {markdown_text(problem)}" for problem in report.problems]
    unjudged = [t for t in report.tasks if t.problems]
    if unjudged:
        lines += ["", "## Cannot judge these tasks", ""]
        for t in unjudged:
            lines.append(f"- {markdown_text(t.task)}:")
            lines += [f"  - {markdown_text(problem)}" for problem in t.problems]
    notes = [*report.notes, *(f"{t.task}: {note}" for t in report.tasks for note in t.notes)]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {markdown_text(note)}" for note in notes]
    return "\n".join(lines) + "\n"


def to_json(report: CheckReport) -> str:
    payload = {
        "baseline": report.baseline, "candidate": report.candidate, "config": asdict(report.config),
        "exit_code": report.exit_code, "verdict": report.verdict, "problems": list(report.problems),
        "notes": list(report.notes), "tasks": [{**asdict(t), "delta": t.delta} for t in report.tasks],
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def write_report(report: CheckReport, out: Path) -> tuple[Path, Path]:
    md, js = Path(out) / "check.md", Path(out) / "check.json"
    atomic_write_text(md, to_markdown(report))
    atomic_write_text(js, to_json(report))
    return md, js
