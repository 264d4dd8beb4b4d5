"""``icl-gen check``: the CI regression gate between a baseline and a candidate lm-eval run.

For every task both runs scored, the per-sample logs are paired item by item and the candidate's losses
(items the baseline got right and the candidate wrong) are set against its wins. A task regresses when the
paired drop is both **material** (larger than ``--max-drop``, absolute) and **significant** (McNemar's
exact test, one-sided, on the discordant pairs, Holm-corrected across tasks): the tolerance keeps a
one-item wobble from failing CI on a large task, the test keeps a few lost items on a small ``--limit``
from counting as evidence.

Runs that did not ask the same questions are not compared: a different dataset fingerprint, task version,
or any of lm-eval's per-item hashes (document, prompt, target) is reported as **drift**, never as a
regression. Exit codes: 0 no regression, 1 regression, 2 the runs cannot be compared (drift, no common
task or item, missing per-sample logs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from icl_generalization.analysis.results import Run, TaskResult, date_id_of, load_runs, read_samples
from icl_generalization.core.errors import DataError, UserError

EXIT_OK, EXIT_REGRESSION, EXIT_INCOMPARABLE = 0, 1, 2
CORRECTIONS = ("holm", "none")
HASHES = ("doc_hash", "prompt_hash", "target_hash")


@dataclass(frozen=True)
class CheckConfig:
    alpha: float = 0.05
    max_drop: float = 0.02
    metric: str = "acc"
    correction: str = "holm"
    # Drift alone makes the gate answer "cannot compare" (exit 2) unless allowed: an unvetted task
    # should not pass CI silently because its prompt changed.
    allow_drift: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise UserError(f"alpha must be between 0 and 1, got {self.alpha}")
        if not 0 <= self.max_drop < 1:
            raise UserError(f"max_drop must be in [0, 1), got {self.max_drop}")
        if not self.metric:
            raise UserError("metric must be a per-sample metric name such as acc")
        if self.correction not in CORRECTIONS:
            raise UserError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")


@dataclass(frozen=True)
class TaskCheck:
    task: str
    status: str  # ok | regression | drop-not-significant | drift
    reason: str = ""
    n_paired: int = 0
    baseline: float | None = None
    candidate: float | None = None
    losses: int = 0
    wins: int = 0
    p_value: float | None = None
    p_adjusted: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.candidate is None else self.candidate - self.baseline


@dataclass(frozen=True)
class CheckReport:
    baseline: str
    candidate: str
    config: CheckConfig
    tasks: tuple[TaskCheck, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        statuses = {t.status for t in self.tasks}
        if "regression" in statuses:
            return EXIT_REGRESSION
        if not statuses - {"drift"} or ("drift" in statuses and not self.config.allow_drift):
            return EXIT_INCOMPARABLE
        return EXIT_OK

    @property
    def verdict(self) -> str:
        code = self.exit_code
        if code == EXIT_REGRESSION:
            names = ", ".join(t.task for t in self.tasks if t.status == "regression")
            return f"REGRESSION in {names}"
        if code == EXIT_INCOMPARABLE:
            names = ", ".join(t.task for t in self.tasks if t.status == "drift")
            return f"CANNOT COMPARE: drift in {names}"
        return "no regression"


def latest_tasks(runs: list[Run]) -> dict[str, tuple[Run, TaskResult]]:
    """Task name -> the latest run that scored it (runs come oldest first)."""
    return {name: (run, task) for run in runs for name, task in run.tasks.items()}


def _samples(run: Run, task: TaskResult) -> dict[str, Any]:
    if task.samples_file is None:
        expected = run.path.parent / f"samples_{task.name}_{date_id_of(run.path)}.jsonl"
        raise DataError(f"no per-sample log for task {task.name} of {run.path} (expected {expected}); "
                        "rerun lm-eval with --log_samples")
    return read_samples(task.samples_file)


def mcnemar_exact(losses: int, wins: int) -> float:
    """One-sided exact McNemar p-value that the candidate loses more often than it wins."""
    from scipy.stats import binomtest

    if losses + wins == 0:
        return 1.0
    return float(binomtest(losses, losses + wins, 0.5, alternative="greater").pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the tasks of one gate)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _drift(base: TaskResult, cand: TaskResult) -> str:
    if base.version != cand.version:
        return f"task version {base.version} -> {cand.version}"
    if base.fingerprint and cand.fingerprint and base.fingerprint != cand.fingerprint:
        return f"dataset fingerprint {base.fingerprint[:12]} -> {cand.fingerprint[:12]}"
    return ""


def check_task(name: str, baseline: tuple[Run, TaskResult], candidate: tuple[Run, TaskResult],
               config: CheckConfig) -> TaskCheck:
    """Pair one task's items; return drift, or the paired counts and the McNemar p-value."""
    b_samples, c_samples = _samples(*baseline), _samples(*candidate)
    reason = _drift(baseline[1], candidate[1])
    if reason:
        return TaskCheck(name, "drift", reason)
    keys = sorted(set(b_samples) & set(c_samples))
    if not keys:
        return TaskCheck(name, "drift", "no item in common (different documents)")
    changed = {h: sum(getattr(b_samples[k], h) != getattr(c_samples[k], h) for k in keys) for h in HASHES}
    if any(changed.values()):
        which = ", ".join(f"{h} on {n}" for h, n in changed.items() if n)
        return TaskCheck(name, "drift", f"the items differ ({which} of {len(keys)} paired items)")
    losses = wins = b_right = c_right = 0
    for key in keys:
        try:
            b, c = b_samples[key].metrics[config.metric], c_samples[key].metrics[config.metric]
        except KeyError:
            raise UserError(f"task {name}: the samples have no per-item {config.metric!r}") from None
        b_right, c_right = b_right + (b >= 0.5), c_right + (c >= 0.5)
        losses += b >= 0.5 > c
        wins += c >= 0.5 > b
    unpaired = len(set(b_samples) ^ set(c_samples))
    return TaskCheck(name, "ok", f"{unpaired} unpaired items left out" if unpaired else "", len(keys),
                     b_right / len(keys), c_right / len(keys), losses, wins, mcnemar_exact(losses, wins))


def _decide(checks: list[TaskCheck], config: CheckConfig) -> list[TaskCheck]:
    tested = [t for t in checks if t.p_value is not None]
    raw = [t.p_value for t in tested if t.p_value is not None]
    adjusted = dict(zip((t.task for t in tested), holm(raw) if config.correction == "holm" else raw, strict=True))
    out = []
    for t in checks:
        if t.p_value is None:
            out.append(t)
            continue
        p_adj = adjusted[t.task]
        drop = -(t.delta or 0.0)
        status = "ok"
        if drop > config.max_drop:
            status = "regression" if p_adj < config.alpha else "drop-not-significant"
        out.append(TaskCheck(t.task, status, t.reason, t.n_paired, t.baseline, t.candidate, t.losses, t.wins,
                             t.p_value, p_adj))
    return out


def run_check(baseline: Path, candidate: Path, config: CheckConfig | None = None) -> CheckReport:
    config = config or CheckConfig()
    base, cand = latest_tasks(load_runs([baseline])), latest_tasks(load_runs([candidate]))
    common = sorted(set(base) & set(cand))
    if not common:
        raise UserError(f"the baseline ({', '.join(sorted(base)) or 'no tasks'}) and the candidate "
                        f"({', '.join(sorted(cand)) or 'no tasks'}) share no task; nothing to compare")
    checks = _decide([check_task(name, base[name], cand[name], config) for name in common], config)
    notes = []
    if only := sorted(set(base) - set(cand)):
        notes.append(f"not in the candidate (not checked): {', '.join(only)}")
    if only := sorted(set(cand) - set(base)):
        notes.append(f"not in the baseline (not checked): {', '.join(only)}")
    return CheckReport(str(baseline), str(candidate), config, tuple(checks), tuple(notes))


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def to_markdown(report: CheckReport) -> str:
    cfg = report.config
    lines = [
        "# icl-gen check", "",
        f"**{report.verdict}** (exit {report.exit_code})", "",
        f"baseline `{report.baseline}`, candidate `{report.candidate}`; metric `{cfg.metric}`; a regression is a "
        f"paired drop above {cfg.max_drop} with McNemar p < {cfg.alpha} ({cfg.correction} correction)", "",
        "| task | status | paired items | baseline | candidate | Δ | lost | won | p | p adj. | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in report.tasks:
        lines.append(f"| {t.task} | {t.status} | {t.n_paired} | {_num(t.baseline)} | {_num(t.candidate)} | "
                     f"{_num(t.delta, True)} | {t.losses} | {t.wins} | {_p(t.p_value)} | {_p(t.p_adjusted)} | "
                     f"{t.reason.replace('|', '/')} |")
    if report.notes:
        lines += [""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def to_json(report: CheckReport) -> str:
    payload = {
        "baseline": report.baseline, "candidate": report.candidate, "config": asdict(report.config),
        "exit_code": report.exit_code, "verdict": report.verdict, "notes": list(report.notes),
        "tasks": [{**asdict(t), "delta": t.delta} for t in report.tasks],
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def write_report(report: CheckReport, out: Path) -> tuple[Path, Path]:
    from icl_generalization.core.paths import atomic_write_text

    md, js = Path(out) / "check.md", Path(out) / "check.json"
    atomic_write_text(md, to_markdown(report))
    atomic_write_text(js, to_json(report))
    return md, js
