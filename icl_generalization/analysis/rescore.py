"""``icl-gen rescore``: a finished run's metrics recomputed from its per-sample logs alone, without the model.

For every task that logged its samples (``--log_samples``): ``acc`` and ``acc_norm`` exactly as lm-eval computed
them live (``choice_scores``; each is checked against the item values and the aggregate lm-eval wrote, and a
mismatch is reported, never hidden), the calibrated accuracy where the run stored content-free priors
(``priors``; "n/a" with the reason otherwise), and the same three per form for families whose items have forms
(the syllogisms' moods). With ``--out`` the folder also gets a copy of each run in lm-eval's own layout whose
per-sample lines carry ``acc_calibrated`` beside ``acc`` and ``acc_norm``, so ``icl-gen check --metric
acc_calibrated`` and ``icl-gen compare`` read a rescored run like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icl_generalization.analysis.choice_scores import ChoiceLog, ItemScores, item_scores, iter_forms, read_choice_logs
from icl_generalization.analysis.priors import PriorsFile, TaskPriors, read_priors
from icl_generalization.analysis.results import Run, TaskResult, chance_level, find_results_files, load_run
from icl_generalization.analysis.results_schema import DEFAULT_FILTER
from icl_generalization.analysis.safe_text import markdown_code, markdown_text
from icl_generalization.core.errors import DataError, UserError
from icl_generalization.core.outputs import OutputFolder

CALIBRATED = "acc_calibrated"
NOT_AVAILABLE = "n/a"


@dataclass(frozen=True)
class Scores:
    n: int
    acc: float
    acc_norm: float
    acc_calibrated: float | None


@dataclass(frozen=True)
class FormScores(Scores):
    form: str


@dataclass(frozen=True)
class TaskRescore(Scores):
    run: str  # the results file's folder, relative to the path rescored
    task: str
    family: str | None
    split: str | None
    condition: str | None
    chance: float | None
    live_acc: float | None
    live_acc_norm: float | None
    # Whether every item's recomputed acc and acc_norm equal the logged ones, and the means the results file's.
    matches_live: bool
    calibration: str  # what the calibrated accuracy rests on, or why it is n/a
    forms: tuple[FormScores, ...] = ()


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)  # lm-eval's own ``mean`` aggregation, so equal means are bit-equal


def _scores(items: Sequence[ItemScores]) -> tuple[int, float, float, float | None]:
    calibrated = [s.acc_calibrated for s in items]
    cal = None if any(c is None for c in calibrated) else _mean([c for c in calibrated if c is not None])
    return len(items), _mean([s.acc for s in items]), _mean([s.acc_norm for s in items]), cal


def _target_delimiter(run: Run, task: str) -> str:
    from icl_generalization.analysis.results import load_results_file

    config = load_results_file(run.path).configs[task].model_extra or {}
    delimiter = config.get("target_delimiter", " ")  # lm-eval's default when a task does not set it
    return delimiter if isinstance(delimiter, str) else " "


def _priors_for(task: str, logs: Sequence[ChoiceLog], priors: PriorsFile | None,
                where: Path) -> tuple[dict[str, list[float]] | None, str]:
    if priors is None:
        return None, ("n/a: the run stored no content-free priors (no priors_<date>.json beside its results file); "
                      "icl-gen eval --output_path ... and reproduce store them")
    entry = priors.tasks.get(task, TaskPriors(unavailable="the priors file has no entry for this task"))
    if entry.unavailable:
        return None, f"n/a: {entry.unavailable}"
    found = {}
    for log in logs:
        prior = entry.items.get(log.key)
        if prior is None or prior.doc_hash != log.line.get("doc_hash") or len(prior.loglikelihoods) != len(
                log.requests):
            raise DataError(f"{where}: task {task}: the prior of item {log.key!r} does not belong to the logged "
                            "item (missing, another document hash, or another number of choices)")
        found[log.key] = prior.loglikelihoods
    return found, ("loglik(choice | prompt) - loglik(choice | prompt with the question replaced by "
                   f"{priors.content_free!r})")


def _matches(logs: Sequence[ChoiceLog], items: Sequence[ItemScores], task: TaskResult) -> bool:
    for log, s in zip(logs, items, strict=True):
        for name, value in (("acc", s.acc), ("acc_norm", s.acc_norm)):
            if name in log.logged and log.logged[name] != value:
                return False
    n, acc, acc_norm, _ = _scores(items)
    return task.value("acc") in (None, acc) and task.value("acc_norm") in (None, acc_norm) and task.n in (0, n)


Rescored = tuple[TaskRescore, list[ItemScores], list[ChoiceLog]]


def rescore_task(run: Run, label: str, task: TaskResult, priors: PriorsFile | None) -> Rescored:
    assert task.samples_file is not None
    logs = read_choice_logs(task.samples_file)
    delimiter = _target_delimiter(run, task.name)
    prior_by_key, calibration = _priors_for(task.name, logs, priors, run.path.parent / f"priors_{run.date_id}.json")
    items = [item_scores(log, delimiter, prior_by_key[log.key] if prior_by_key else None) for log in logs]
    position = {id(log): i for i, log in enumerate(logs)}
    forms = tuple(FormScores(*_scores([items[position[id(log)]] for log in group]), form=form)
                  for form, group in iter_forms(logs))
    n, acc, acc_norm, cal = _scores(items)
    result = TaskRescore(
        n=n, acc=acc, acc_norm=acc_norm, acc_calibrated=cal, run=label, task=task.name, family=task.family,
        split=task.split, condition=task.condition, chance=chance_level(task), live_acc=task.value("acc"),
        live_acc_norm=task.value("acc_norm"), matches_live=_matches(logs, items, task), calibration=calibration,
        forms=forms)
    return result, items, logs


def rescore(path: Path, out: OutputFolder | None = None) -> list[TaskRescore]:
    """Every logged task of every run under ``path``, oldest run first; with ``out``, gate-ready copies too."""
    root = path if path.is_dir() else path.parent
    results: list[TaskRescore] = []
    for results_file in find_results_files(path):
        run = load_run(results_file)
        relative = results_file.resolve().relative_to(root.resolve())
        label = relative.parent.as_posix()  # the run's folder under the path given ("." for the path itself)
        priors = read_priors(results_file)
        logged = {name: task for name, task in sorted(run.tasks.items()) if task.samples_file is not None}
        copies: dict[str, Rescored] = {}
        for name, task in logged.items():
            copies[name] = rescore_task(run, label, task, priors)
            results.append(copies[name][0])
        if out is not None and copies:
            _write_copy(out, results_file, relative, copies)
    if not results:
        raise UserError(f"no task under {path} logged its samples; rescoring needs lm-eval's --log_samples files")
    return results


def _write_copy(out: OutputFolder, results_file: Path, relative: Path,
                copies: dict[str, Rescored]) -> None:
    """The run in lm-eval's layout, its per-item metrics recomputed (and calibrated where possible)."""
    data: dict[str, Any] = json.loads(results_file.read_text(encoding="utf-8"))
    folder = Path("runs") / relative.parent
    date_id = load_run(results_file).date_id
    for name, (summary, items, logs) in copies.items():
        scores = data["results"][name]
        scores.update({f"acc,{DEFAULT_FILTER}": summary.acc, f"acc_norm,{DEFAULT_FILTER}": summary.acc_norm})
        metrics = ["acc", "acc_norm"]
        if summary.acc_calibrated is not None:
            scores[f"{CALIBRATED},{DEFAULT_FILTER}"] = summary.acc_calibrated
            metrics.append(CALIBRATED)
        lines = []
        for log, s in zip(logs, items, strict=True):
            # The requests repeat an in-context prompt once per choice: the document already holds it once.
            line: dict[str, Any] = {k: v for k, v in log.line.items() if k not in ("arguments", "resps", *log.logged)}
            line.update({"metrics": metrics, "acc": s.acc, "acc_norm": s.acc_norm})
            if s.acc_calibrated is not None:
                line[CALIBRATED] = s.acc_calibrated
            lines.append(json.dumps(line, ensure_ascii=False))
        out.write_text(folder / f"samples_{name}_{date_id}.jsonl", "\n".join(lines) + "\n")
    data["results"] = {k: v for k, v in data["results"].items() if k in copies}
    out.write_text(folder / relative.name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _fmt(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.3f}"


def to_markdown(results: Sequence[TaskRescore]) -> str:
    lines = ["| run | task | n | acc | acc_norm | calibrated acc | chance | live acc / acc_norm reproduced |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {markdown_text(r.run)} | {markdown_code(r.task)} | {r.n} | {_fmt(r.acc)} | "
                     f"{_fmt(r.acc_norm)} | {_fmt(r.acc_calibrated)} | {_fmt(r.chance)} | "
                     f"{'yes' if r.matches_live else '**no**'} |")
    with_forms = [r for r in results if r.forms]
    if with_forms:
        lines += ["", "Per form:", "", "| task | form | n | acc | acc_norm | calibrated acc |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {markdown_code(r.task)} | {markdown_text(f.form)} | {f.n} | {_fmt(f.acc)} | {_fmt(f.acc_norm)} | "
                  f"{_fmt(f.acc_calibrated)} |" for r in with_forms for f in r.forms]
    notes = sorted({r.calibration for r in results if r.acc_calibrated is None})
    lines += ["", "Calibrated accuracy: " + "; ".join(sorted({r.calibration for r in results
                                                               if r.acc_calibrated is not None}) or ["none"])]
    lines += [f"- {markdown_text(note)}" for note in notes]
    return "\n".join(lines) + "\n"


def to_json(results: Sequence[TaskRescore]) -> str:
    return json.dumps({"tasks": [asdict(r) for r in results]}, indent=2) + "\n"
