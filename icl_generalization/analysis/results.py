"""Reading lm-eval 0.4.13 output: aggregated results files and the per-sample logs of ``--log_samples``.

lm-eval's ``EvaluationTracker`` writes, for ``--output_path DIR``::

    DIR/<model_name_sanitized>/results_<date_id>.json
    DIR/<model_name_sanitized>/samples_<task>_<date_id>.jsonl     (one per task, with --log_samples)

and for ``--output_path FILE.json``: ``FILE_<date_id>.json`` with the samples files beside it. A results
path given by the user may be any of these files or any folder above them; every results file found is
one :class:`Run`. Only this module knows those file names and the fields inside them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue, ValidationError

from icl_generalization.analysis.results_schema import (
    DEFAULT_FILTER,
    Provenance,
    ResultsFile,
    RunConfig,
    SampleLine,
    invalid,
)
from icl_generalization.core.errors import DataError, UserError
from icl_generalization.data.records import iter_jsonl

# Keys of ``config.model_args`` that name the model, in the order lm-eval itself looks for them
# (``peft``/``delta`` are adapters, reported as the checkpoint instead).
MODEL_NAME_KEYS = ("pretrained", "model", "path", "engine")


@dataclass(frozen=True)
class Sample:
    """One logged document of one task: what was asked (as hashes) and whether the model got it right."""

    doc_id: int
    # The item's own id when the document has one (ours do), so runs with different --limit or
    # document order still pair the same questions; lm-eval's positional doc_id otherwise.
    key: str
    metrics: Mapping[str, float]
    doc_hash: str
    prompt_hash: str
    target_hash: str
    fingerprint: str | None
    n_choices: int | None
    n_gold: int | None
    # The fact the item tests (a person, a premise pair, a category, a compared pair): items sharing it are not
    # independent evidence. None in logs written before the task rows carried it.
    cluster: str | None = None


@dataclass(frozen=True)
class TaskResult:
    """One task's aggregated scores in one run, with the task identity our loaders record."""

    name: str
    version: str
    n: int
    metrics: Mapping[str, float | None]
    provenance: Provenance
    samples_file: Path | None

    @property
    def family(self) -> str | None:
        return self.provenance.family

    @property
    def split(self) -> str | None:
        return self.provenance.split

    @property
    def control(self) -> str | None:
        return self.provenance.control

    @property
    def condition(self) -> str | None:
        return self.provenance.condition

    @property
    def fingerprint(self) -> str | None:
        return self.provenance.fingerprint

    def value(self, metric: str) -> float | None:
        return self.metrics.get(metric)

    def stderr(self, metric: str) -> float | None:
        se = self.metrics.get(f"{metric}_stderr")
        if se is None:
            # lm-eval writes "N/A" for one-sample tasks and when bootstrapping is off; the binomial
            # standard error is exact for a 0/1 metric, so it stands in.
            p = self.metrics.get(metric)
            if p is None or self.n < 1:
                return None
            se = math.sqrt(p * (1 - p) / self.n)
        return se


@dataclass(frozen=True)
class Augmentation:
    """What a finetuned checkpoint's augmented corpus added, as its manifest recorded it."""

    strategy: str | None  # None: plain FT, or a corpus that does not say which strategy wrote it
    tokens_added: int
    token_budget: int | None  # set when the corpus was cut to a matched budget (reproduce's strategy runs)


@dataclass(frozen=True)
class Run:
    """One lm-eval results file: the model that ran, and the tasks it scored."""

    path: Path
    date_id: str
    date: float
    model: str
    model_type: str
    checkpoint: str | None
    checkpoint_kind: str | None
    checkpoint_sha256: str | None
    tasks: Mapping[str, TaskResult] = field(default_factory=dict)
    # The checkpoint's augmentation: strategy, tokens added, matched budget (None: not recorded / no checkpoint).
    augmentation: Augmentation | None = None

    @property
    def label(self) -> str:
        return self.model if not self.checkpoint else f"{self.model} + {self.checkpoint}"


def find_results_files(path: Path) -> list[Path]:
    """The results files at ``path``: the file itself, or every ``results_*.json`` below a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"results path {path} does not exist")
    found = sorted(p for p in path.rglob("results_*.json") if not p.name.startswith("."))
    if not found:
        raise UserError(f"no lm-eval results file (results_*.json) under {path}; "
                        "was lm-eval run with --output_path?")
    return found


def date_id_of(results_file: Path) -> str:
    """The ``<date_id>`` that ties a results file to its samples files (``results_<id>.json``, ``X_<id>.json``)."""
    stem = results_file.stem
    return stem[len("results_"):] if stem.startswith("results_") else stem.rpartition("_")[2]


def samples_file_for(results_file: Path, task: str) -> Path | None:
    candidate = results_file.parent / f"samples_{task}_{date_id_of(results_file)}.jsonl"
    return candidate if candidate.is_file() else None


def load_results_file(path: Path) -> ResultsFile:
    """A results file, validated (one DataError line naming the file and field otherwise)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    try:
        return ResultsFile.model_validate(data)
    except ValidationError as exc:
        raise invalid(str(path), "an lm-eval results file", exc) from None


def model_args_of(config: RunConfig) -> dict[str, JsonValue]:
    """``config.model_args`` as a mapping (lm-eval records either the string given or a mapping)."""
    args = config.model_args or {}
    if isinstance(args, str):
        from lm_eval.utils import simple_parse_args_string

        parsed: dict[str, JsonValue] = simple_parse_args_string(args)
        return parsed
    return dict(args)


def _short_name(name: str) -> str:
    # A local folder (a converted or finetuned model) is named by its last component; hub ids keep
    # their organisation, which is part of the name.
    return Path(name).name if name.startswith(("/", "~", ".")) else name


def _text(value: JsonValue) -> str | None:
    return str(value) if value else None


def _model_identity(config: RunConfig) -> tuple[str, str | None, str | None, str | None]:
    args = model_args_of(config)
    model_type = config.model or "unknown"
    name = next((str(args[k]) for k in MODEL_NAME_KEYS if args.get(k)), None) or config.base_model
    if name is None and model_type == "icl-gen":
        from icl_generalization.weights.default_model import DEFAULT_MODEL

        name = DEFAULT_MODEL
    checkpoint = config.checkpoint or _text(args.get("checkpoint"))
    adapter = _text(args.get("peft")) or _text(args.get("delta"))
    if not checkpoint and adapter:
        checkpoint = _short_name(adapter)
    kind = config.checkpoint_kind or _text(args.get("checkpoint_kind"))
    sha = config.checkpoint_sha256 or _text(args.get("checkpoint_sha256"))
    return _short_name(name or model_type), _short_name(checkpoint) if checkpoint else None, kind, sha


def _task_n(data: ResultsFile, task: str) -> int:
    sample_len = data.results[task].sample_len
    if sample_len is not None:
        return sample_len
    counts = data.n_samples.get(task)
    return counts.effective if counts is not None and counts.effective is not None else 0


def _augmentation(config: RunConfig) -> Augmentation | None:
    if config.checkpoint_tokens_added is None:
        return None
    return Augmentation(strategy=config.checkpoint_strategy, tokens_added=config.checkpoint_tokens_added,
                        token_budget=config.checkpoint_token_budget)


def load_run(results_file: Path) -> Run:
    data = load_results_file(results_file)
    model, checkpoint, kind, sha = _model_identity(data.config)
    tasks: dict[str, TaskResult] = {}
    for name, task_config in data.configs.items():
        if name not in data.results:
            continue
        version = data.versions.get(name, task_config.metadata.version if task_config.metadata else None)
        tasks[name] = TaskResult(
            name=name, version=str(version), n=_task_n(data, name), metrics=data.results[name].metrics(),
            provenance=task_config.provenance(), samples_file=samples_file_for(results_file, name),
        )
    return Run(path=results_file, date_id=date_id_of(results_file), date=data.date or 0.0, model=model,
               model_type=data.config.model or "unknown", checkpoint=checkpoint, checkpoint_kind=kind,
               checkpoint_sha256=sha, tasks=tasks, augmentation=_augmentation(data.config))


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """Every run under the given files or folders, each results file read once, oldest first."""
    seen: set[Path] = set()
    runs = []
    for path in paths:
        for file in find_results_files(Path(path)):
            if file.resolve() not in seen:
                seen.add(file.resolve())
                runs.append(load_run(file))
    return sorted(runs, key=lambda r: (r.date, r.date_id, str(r.path)))


def _count(value: object) -> int | None:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return 1
    return None


def _parse_sample(raw: Mapping[str, JsonValue], where: str) -> Sample:
    try:
        line = SampleLine.model_validate(raw)
    except ValidationError as exc:
        raise invalid(where, "an lm-eval sample line", exc) from None
    doc = line.doc
    n_choices = _count(doc.choices) if doc.choices is not None else None
    if n_choices is None and line.arguments is not None:
        n_choices = len(line.arguments)  # one loglikelihood request per choice
    n_gold = _count(doc.gold) if doc.gold is not None else None
    if n_gold is None:
        try:
            n_gold = _count(json.loads(str(line.target)))
        except json.JSONDecodeError:
            n_gold = None
    return Sample(doc_id=line.doc_id, key=str(doc.id if doc.id is not None else line.doc_id),
                  metrics=line.metric_values(), doc_hash=line.doc_hash, prompt_hash=line.prompt_hash,
                  target_hash=line.target_hash, fingerprint=doc.fingerprint, n_choices=n_choices, n_gold=n_gold,
                  cluster=doc.cluster)


def read_samples(path: Path) -> dict[str, Sample]:
    """A samples file as ``key -> Sample``, keeping the default filter's line when a task has several."""
    samples: dict[str, Sample] = {}
    for where, raw in iter_jsonl(path):
        if raw.get("filter", DEFAULT_FILTER) != DEFAULT_FILTER:
            continue
        sample = _parse_sample(raw, where)
        if sample.key in samples:
            raise DataError(f"{where}: document {sample.key!r} is logged twice (two runs appended to one file?)")
        samples[sample.key] = sample
    if not samples:
        raise DataError(f"{path}: no samples under the filter {DEFAULT_FILTER!r}")
    return samples


def clusters_of(samples: Mapping[str, Sample]) -> dict[str, str] | None:
    """Item key -> its cluster, or None when any item lacks one (a log older than the field, or a foreign task):
    a partial labelling would silently treat the unlabelled items as one cluster or drop them."""
    clusters = {key: s.cluster for key, s in samples.items() if s.cluster is not None}
    return clusters if samples and len(clusters) == len(samples) else None


def chance_level(task: TaskResult, samples: Mapping[str, Sample] | None = None) -> float | None:
    """Accuracy of guessing: recorded in the provenance, else the mean of |gold| / |choices| over the items."""
    if task.provenance.chance is not None:
        return task.provenance.chance
    if samples is None and task.samples_file is not None:
        samples = read_samples(task.samples_file)
    if not samples:
        return None
    ratios = [s.n_gold / s.n_choices for s in samples.values() if s.n_gold and s.n_choices]
    return sum(ratios) / len(ratios) if ratios else None
