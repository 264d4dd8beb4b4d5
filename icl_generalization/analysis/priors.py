"""Content-free priors of a finished run: each choice's log-likelihood after a prompt with no question in it.

Zhao et al. 2021 ("Calibrate before use") estimate a model's bias towards some answers by scoring them after a
content-free input such as ``"N/A"`` in the same prompt format; subtracting that prior from each choice's
log-likelihood removes the bias from the choice. Here the question is replaced by ``"N/A"`` and whatever comes
before it (an in-context task's documents) is kept, so the prior is the model's preference among the choices
given everything except the question. ``icl-gen eval`` and ``reproduce`` score these requests right after
lm-eval finishes, with the same model (``scoring.content_free``), and store them beside the results file as
``priors_<date_id>.json``, which ``icl-gen rescore`` reads. A task whose documents do not say which part of the
prompt is the question (a foreign task) gets no prior, with the reason recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from icl_generalization.analysis.choice_scores import CONTENT_FREE, ChoiceLog, read_choice_logs
from icl_generalization.analysis.results import date_id_of, load_results_file, load_run, model_args_of
from icl_generalization.analysis.results_schema import invalid
from icl_generalization.core.errors import DataError
from icl_generalization.core.outputs import claim_file
from icl_generalization.scoring.content_free import RecordedModel, score_continuations

Scorer = Callable[[RecordedModel, Sequence[tuple[str, str]]], list[float]]
LogLikelihood = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ItemPrior(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    doc_hash: str  # lm-eval's hash of the document: a prior is used only for the item it was scored for
    loglikelihoods: list[LogLikelihood]


class TaskPriors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    items: dict[str, ItemPrior] = Field(default_factory=dict)
    unavailable: str | None = None  # why the task has no priors


class PriorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    content_free: str
    model: str
    tasks: dict[str, TaskPriors]


def priors_file_for(results_file: Path) -> Path:
    return results_file.parent / f"priors_{date_id_of(results_file)}.json"


def _recorded_model(results_file: Path) -> RecordedModel:
    config = load_results_file(results_file).config
    extra = config.model_extra or {}
    device = extra.get("device")
    return RecordedModel(model=config.model or "icl-gen", model_args=model_args_of(config),
                         batch_size=extra.get("batch_size"), device=device if isinstance(device, str) else None)


def _why_not(logs: Sequence[ChoiceLog]) -> str | None:
    if any(log.content_free_context() is None for log in logs):
        return ("its documents do not name the question inside the prompt (no 'prompt' field that ends the "
                "context), so no content-free prompt can be built")
    return None


def write_priors(results_file: Path, scorer: Scorer = score_continuations) -> Path | None:
    """Score the content-free requests of every task of ``results_file`` that has a samples file, and write
    them beside it; None when no task logged its samples (nothing to calibrate)."""
    run = load_run(results_file)
    logs = {name: read_choice_logs(task.samples_file) for name, task in run.tasks.items() if task.samples_file}
    if not logs:
        return None
    tasks: dict[str, TaskPriors] = {}
    requests: list[tuple[str, str]] = []
    for name, task_logs in logs.items():
        if reason := _why_not(task_logs):
            tasks[name] = TaskPriors(unavailable=reason)
            continue
        requests += [(str(log.content_free_context()), cont) for log in task_logs for _, cont in log.requests]
    scores = iter(scorer(_recorded_model(results_file), requests))
    for name, task_logs in logs.items():
        if name not in tasks:
            tasks[name] = TaskPriors(items={
                log.key: ItemPrior(doc_hash=str(log.line["doc_hash"]),
                                   loglikelihoods=[next(scores) for _ in log.requests]) for log in task_logs})
    target = priors_file_for(results_file)
    record = PriorsFile(content_free=CONTENT_FREE, model=run.label, tasks=tasks)
    with claim_file(target, "eval", {"results": str(results_file)}) as owned:
        owned.write_text(target.name, record.model_dump_json(indent=1) + "\n")
    return target


def read_priors(results_file: Path) -> PriorsFile | None:
    """The run's priors, or None when it has none (an evaluation without them, or before they existed)."""
    path = priors_file_for(results_file)
    if not path.is_file():
        return None
    try:
        return PriorsFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise invalid(str(path), "a priors file", exc) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
