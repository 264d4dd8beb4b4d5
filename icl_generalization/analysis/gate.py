"""``icl-gen check``: the CI regression gate between a baseline and a candidate lm-eval run.

For every task of the baseline, the per-sample logs are paired item by item and the candidate's losses
(items the baseline got right and the candidate wrong) are set against its wins. A task regresses when the
paired drop is both **material** (larger than ``--max-drop``, absolute) and **significant** (McNemar's
exact test, one-sided, on the discordant pairs, or the cluster test below; Holm-corrected across tasks):
the tolerance keeps a one-item wobble from failing CI on a large task, the test keeps a few lost items on a
small ``--limit`` from counting as evidence.

The gate must not pass by accident, so a task it could not compare in full is **cannot judge**, with every
reason listed: the candidate lacks the task, the dataset fingerprints differ, a per-sample log is missing or
invalid, the two runs scored different items, a per-item outcome is not 0 or 1, or the task version or
lm-eval's per-item hashes (document, prompt, target) differ (that last kind, drift, may be allowed with
``--allow-drift``: the paired items are then compared anyway and the drift is noted). Giving the same
results file as both sides is refused the same way. Exit codes: :data:`EXIT_NO_REGRESSION` only when every
baseline task was compared and none regressed, :data:`EXIT_REGRESSION` when one regressed (even if others
could not be judged), :data:`EXIT_CANNOT_JUDGE` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from icl_generalization.analysis.results import (
    Run,
    Sample,
    TaskResult,
    clusters_of,
    date_id_of,
    load_runs,
    read_samples,
)
from icl_generalization.core.errors import UserError
from icl_generalization.data.clustering import clustered_mean_fit

EXIT_NO_REGRESSION = 0
EXIT_REGRESSION = 1
EXIT_CANNOT_JUDGE = 2
CORRECTIONS = ("holm", "none")
HASHES = ("doc_hash", "prompt_hash", "target_hash")
OK, REGRESSION, DROP_NOT_SIGNIFICANT, CANNOT_JUDGE = "ok", "regression", "drop-not-significant", "cannot-judge"
EXAMPLES = 3  # item ids named in a reason, so a reader can look them up
MCNEMAR, CLUSTER_T = "mcnemar", "cluster-t"  # the test whose p-value decided a task
POWER = 0.8
# A gate that cannot see a ten-point drop at 80% power is not guarding anything on that task.
GATEABLE_DROP = 0.10
# statsmodels' least squares leave ~1e-16 of rounding where a standard error is exactly zero (no spread).
NO_SPREAD = 1e-12


@dataclass(frozen=True)
class CheckConfig:
    alpha: float = 0.05
    max_drop: float = 0.02
    metric: str = "acc"
    correction: str = "holm"
    # A changed task version or prompt makes a task "cannot judge" unless allowed: an unvetted task should
    # not pass CI silently because its prompt changed. Different data (fingerprints) is never allowed.
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
    status: str  # ok | regression | drop-not-significant | cannot-judge
    # Why the task cannot be judged (status cannot-judge); every reason found, not only the first.
    problems: tuple[str, ...] = ()
    # Allowed drift the comparison went ahead despite (--allow-drift).
    notes: tuple[str, ...] = ()
    n_paired: int = 0
    baseline: float | None = None
    candidate: float | None = None
    losses: int = 0
    wins: int = 0
    # The deciding test's p-value (``test``), before and after the correction across tasks.
    p_value: float | None = None
    p_adjusted: float | None = None
    test: str | None = None
    p_mcnemar: float | None = None
    # Cluster-robust paired t-test (one-sided), when the logs name each item's cluster and there are >= 2.
    p_cluster: float | None = None
    clusters: int | None = None
    # The smallest drop this task detects with 80% power at --alpha (None: too few items or clusters for any),
    # and the units the power analysis counted ("4 clusters", "24 items").
    min_detectable_drop: float | None = None
    power_units: str | None = None

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.candidate is None else self.candidate - self.baseline


@dataclass(frozen=True)
class CheckReport:
    baseline: str
    candidate: str
    config: CheckConfig
    tasks: tuple[TaskCheck, ...]
    # Reasons that concern the whole comparison (the same run on both sides, an empty baseline).
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def _with(self, status: str) -> list[str]:
        return [t.task for t in self.tasks if t.status == status]

    @property
    def exit_code(self) -> int:
        if self._with(REGRESSION):
            return EXIT_REGRESSION
        if self.problems or self._with(CANNOT_JUDGE) or not self.tasks:
            return EXIT_CANNOT_JUDGE
        return EXIT_NO_REGRESSION

    @property
    def verdict(self) -> str:
        unjudged = self._with(CANNOT_JUDGE)
        if self._with(REGRESSION):
            also = f"; cannot judge {', '.join(unjudged)}" if unjudged else ""
            return f"REGRESSION in {', '.join(self._with(REGRESSION))}{also}"
        if self.exit_code == EXIT_CANNOT_JUDGE:
            return f"CANNOT JUDGE: {', '.join(unjudged) or 'the runs'} (reasons below)"
        return "no regression"


def latest_run_per_task(runs: list[Run]) -> dict[str, tuple[Run, TaskResult]]:
    """Task name -> the latest run that scored it (runs come oldest first)."""
    return {name: (run, task) for run in runs for name, task in run.tasks.items()}


def _read_log(side: str, run: Run, task: TaskResult, problems: list[str]) -> dict[str, Sample] | None:
    """The task's per-sample log, or None with the reason added to ``problems``."""
    if task.samples_file is None:
        expected = run.path.parent / f"samples_{task.name}_{date_id_of(run.path)}.jsonl"
        problems.append(f"no per-sample log in the {side} (expected {expected}); rerun lm-eval with --log_samples")
        return None
    try:
        samples = read_samples(task.samples_file)
    except UserError as exc:
        problems.append(f"the {side}'s per-sample log is invalid: {exc}")
        return None
    if task.n and len(samples) != task.n:
        problems.append(f"the {side}'s per-sample log holds {len(samples)} items but its results file "
                        f"reports {task.n} (a truncated or foreign log)")
    return samples


def mcnemar_exact(losses: int, wins: int) -> float:
    """One-sided exact McNemar p-value that the candidate loses more often than it wins.

    McNemar's exact test is the binomial test of the discordant pairs (losses among losses + wins) against 1/2.
    statsmodels' ``contingency_tables.mcnemar(table, exact=True)`` is its two-sided form and has no one-sided
    option, which a gate needs (only a drop fails it); scipy's ``binomtest`` with ``alternative="greater"`` is
    the one-sided form of the same test. A test checks the two against each other on random tables."""
    from scipy.stats import binomtest

    if losses + wins == 0:
        return 1.0
    return float(binomtest(losses, losses + wins, 0.5, alternative="greater").pvalue)


def cluster_paired_t(differences: Sequence[float], clusters: Sequence[str]) -> float | None:
    """One-sided p-value that the mean per-item difference (candidate - baseline) is below zero, from
    statsmodels' cluster-robust OLS of the differences on a constant (CR1 standard error, t on G - 1 degrees of
    freedom).

    Why this and not a t-test on the cluster means: clusters differ in size (a person has several questions, a
    ``--limit`` cuts the last one short), and the gate's Δ is the mean over items. The OLS coefficient is that
    very mean, with an error that lets a cluster's items err together; a t-test on cluster means would weigh
    a one-item cluster like a ten-item one and so test a different number than the report shows.

    None when there is no such test: fewer than two clusters (no error), or every item lost alike (no spread: t
    is infinite, and McNemar's exact count is the better answer). No item changed, or all alike for the better,
    is no drop: p = 1."""
    fit = clustered_mean_fit(differences, clusters)
    if fit is None:
        return None
    mean, se = float(fit.params[0]), float(fit.bse[0])
    if se < NO_SPREAD and mean > -NO_SPREAD:
        return 1.0
    if se < NO_SPREAD:
        return None
    # statsmodels reports the two-sided p-value of a symmetric t: the lower tail is half of it, or the rest.
    two_sided = float(fit.pvalues[0])
    return two_sided / 2 if mean < 0 else 1 - two_sided / 2


def min_detectable_drop(units: int, alpha: float, power: float = POWER) -> float | None:
    """The smallest drop a one-sided paired t-test over ``units`` independent units detects with ``power``.

    statsmodels' ``TTestPower`` solves for the standardized effect ``e = drop / sd``; a drop made of units lost
    outright (each unit's difference 0 or -1) has ``sd = sqrt(drop (1 - drop))``, so ``drop = e^2 / (1 + e^2)``.
    With items as the units this is close to McNemar's exact test (24 items: 0.21, where 5 of 24 lost items
    give p = 1/32); with clusters as the units it assumes a drop takes whole clusters, the worst case for
    clustered data and the one the cluster-robust test must see.
    """
    if units < 2:
        return None
    from statsmodels.stats.power import TTestPower

    effect = float(TTestPower().solve_power(effect_size=None, nobs=units, alpha=alpha, power=power,
                                            alternative="larger"))
    return effect * effect / (1 + effect * effect)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the tasks of one gate), from statsmodels."""
    if not p_values:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


def _examples(keys: set[str]) -> str:
    shown = sorted(keys)[:EXAMPLES]
    return ", ".join(shown) + (", ..." if len(keys) > EXAMPLES else "")


def _data_problems(base: TaskResult, cand: TaskResult) -> list[str]:
    if base.fingerprint != cand.fingerprint:
        return [f"dataset fingerprint {(base.fingerprint or 'not recorded')[:12]} in the baseline, "
                f"{(cand.fingerprint or 'not recorded')[:12]} in the candidate (different data)"]
    return []


def _item_problems(b_samples: dict[str, Sample], c_samples: dict[str, Sample]) -> list[str]:
    problems = []
    if missing := set(b_samples) - set(c_samples):
        problems.append(f"the candidate did not score {len(missing)} of the baseline's {len(b_samples)} items "
                        f"({_examples(missing)})")
    if extra := set(c_samples) - set(b_samples):
        problems.append(f"the candidate scored {len(extra)} items the baseline did not ({_examples(extra)})")
    return problems


def _drift(base: TaskResult, cand: TaskResult, b_samples: dict[str, Sample] | None,
           c_samples: dict[str, Sample] | None) -> list[str]:
    """Same data, different questions: a new task version, or other documents, prompts or targets."""
    drift = []
    if base.version != cand.version:
        drift.append(f"task version {base.version} -> {cand.version}")
    if b_samples is not None and c_samples is not None:
        keys = set(b_samples) & set(c_samples)
        changed = {h: sum(getattr(b_samples[k], h) != getattr(c_samples[k], h) for k in keys) for h in HASHES}
        if any(changed.values()):
            which = ", ".join(f"{h} on {n}" for h, n in changed.items() if n)
            drift.append(f"the items differ ({which} of {len(keys)} paired items)")
    return drift


def _outcomes(side: str, samples: dict[str, Sample], metric: str, problems: list[str]) -> dict[str, bool]:
    """Item -> right or wrong; McNemar's test needs 0/1 outcomes, so anything else is a problem."""
    outcomes: dict[str, bool] = {}
    absent, other = [], []
    for key, sample in samples.items():
        value = sample.metrics.get(metric)
        if value is None:
            absent.append(key)
        elif value not in (0.0, 1.0):
            other.append(f"{key} = {value}")
        else:
            outcomes[key] = value == 1.0
    if absent:
        problems.append(f"the {side}'s per-sample log has no {metric!r} for {len(absent)} items "
                        f"({_examples(set(absent))})")
    if other:
        problems.append(f"the {side}'s per-sample {metric!r} is not 0 or 1 for {len(other)} items "
                        f"({', '.join(sorted(other)[:EXAMPLES])})")
    return outcomes


def check_task(name: str, baseline: tuple[Run, TaskResult], candidate: tuple[Run, TaskResult] | None,
               config: CheckConfig) -> TaskCheck:
    """Everything that keeps the task from being compared, or the paired counts, the tests' p-values and the
    smallest drop the task could detect."""
    if candidate is None:
        return TaskCheck(name, CANNOT_JUDGE, ("the candidate did not score this task",))
    (b_run, base), (c_run, cand) = baseline, candidate
    problems = _data_problems(base, cand)
    b_samples = _read_log("baseline", b_run, base, problems)
    c_samples = _read_log("candidate", c_run, cand, problems)
    drift = _drift(base, cand, b_samples, c_samples)
    notes: tuple[str, ...] = ()
    if config.allow_drift:
        notes = tuple(f"drift allowed: {d}" for d in drift)
    else:
        problems += [f"drift: {d} (--allow-drift compares them anyway)" for d in drift]
    if b_samples is None or c_samples is None:
        return TaskCheck(name, CANNOT_JUDGE, tuple(problems), notes)
    problems += _item_problems(b_samples, c_samples)
    b_right = _outcomes("baseline", b_samples, config.metric, problems)
    c_right = _outcomes("candidate", c_samples, config.metric, problems)
    if problems:
        return TaskCheck(name, CANNOT_JUDGE, tuple(problems), notes)
    keys = sorted(b_right)  # the same items on both sides, or a problem was recorded above
    losses = sum(b_right[k] and not c_right[k] for k in keys)
    wins = sum(c_right[k] and not b_right[k] for k in keys)
    p_mcnemar = mcnemar_exact(losses, wins)
    # The same items on both sides; an older side without labels borrows the other's (allowed drift only).
    labels = clusters_of(b_samples) or clusters_of(c_samples)
    clusters = [labels[k] for k in keys] if labels else None
    n_clusters = len(set(clusters)) if clusters else None
    p_cluster = None
    if clusters:
        p_cluster = cluster_paired_t([float(c_right[k]) - float(b_right[k]) for k in keys], clusters)
        if p_cluster is None:
            notes += (f"no cluster-robust test ({n_clusters} clusters, or every paired item lost): McNemar's "
                      "test decided, counting items that share a fact as independent",)
    mdd = min_detectable_drop(n_clusters or len(keys), config.alpha)
    power_units = f"{n_clusters} cluster{'s' * (n_clusters != 1)}" if n_clusters else f"{len(keys)} items"
    if mdd is None or mdd > max(GATEABLE_DROP, config.max_drop):
        units = f"{len(keys)} items in {n_clusters} clusters" if n_clusters else f"{len(keys)} items"
        sees = f"detects only drops of {mdd:.3f} or more" if mdd is not None else "cannot detect any drop"
        notes += (f"too small to gate on: with {units} it {sees} at {POWER:.0%} power (alpha {config.alpha}); "
                  "raise --limit",)
    decided = (CLUSTER_T, p_cluster) if p_cluster is not None else (MCNEMAR, p_mcnemar)
    return TaskCheck(name, OK, (), notes, n_paired=len(keys), baseline=sum(b_right.values()) / len(keys),
                     candidate=sum(c_right.values()) / len(keys), losses=losses, wins=wins, p_value=decided[1],
                     test=decided[0], p_mcnemar=p_mcnemar, p_cluster=p_cluster, clusters=n_clusters,
                     min_detectable_drop=mdd, power_units=power_units)


def _apply_thresholds(checks: list[TaskCheck], config: CheckConfig) -> list[TaskCheck]:
    """Correct the compared tasks' p-values together, then call each drop a regression or noise."""
    tested = [t for t in checks if t.p_value is not None]
    raw = [t.p_value for t in tested if t.p_value is not None]
    adjusted = dict(zip((t.task for t in tested), holm_adjust(raw) if config.correction == "holm" else raw,
                        strict=True))
    out = []
    for t in checks:
        if t.p_value is None:
            out.append(t)
            continue
        p_adj = adjusted[t.task]
        status = OK
        if -(t.delta or 0.0) > config.max_drop:
            status = REGRESSION if p_adj < config.alpha else DROP_NOT_SIGNIFICANT
        out.append(replace(t, status=status, p_adjusted=p_adj))
    return out


def run_check(baseline: Path, candidate: Path, config: CheckConfig | None = None) -> CheckReport:
    config = config or CheckConfig()
    base_runs, cand_runs = load_runs([baseline]), load_runs([candidate])
    problems = []
    # The same files on both sides would always "pass": two separate runs with equal scores are fine.
    if same := {r.path.resolve() for r in base_runs} & {r.path.resolve() for r in cand_runs}:
        problems.append(f"the baseline and the candidate are the same run ({', '.join(map(str, sorted(same)))})")
    base, cand = latest_run_per_task(base_runs), latest_run_per_task(cand_runs)
    if not base:
        problems.append(f"the baseline {baseline} holds no scored task")
    checks = _apply_thresholds([check_task(name, base[name], cand.get(name), config) for name in sorted(base)],
                               config)
    notes = []
    if only := sorted(set(cand) - set(base)):
        notes.append(f"not in the baseline (not checked): {', '.join(only)}")
    return CheckReport(str(baseline), str(candidate), config, tuple(checks), tuple(problems), tuple(notes))
