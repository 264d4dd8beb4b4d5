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
from typing import Any

from icl_generalization.core.errors import DataError, UserError
from icl_generalization.data.records import iter_jsonl

# Keys of ``config.model_args`` that name the model, in the order lm-eval itself looks for them
# (``peft``/``delta`` are adapters, reported as the checkpoint instead).
MODEL_NAME_KEYS = ("pretrained", "model", "path", "engine")
DEFAULT_FILTER = "none"


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


@dataclass(frozen=True)
class TaskResult:
    """One task's aggregated scores in one run, with the task identity our loaders record."""

    name: str
    version: str
    n: int
    metrics: Mapping[str, float | None]
    provenance: Mapping[str, Any]
    samples_file: Path | None

    @property
    def family(self) -> str | None:
        return self.provenance.get("family")

    @property
    def split(self) -> str | None:
        return self.provenance.get("split")

    @property
    def condition(self) -> str | None:
        return self.provenance.get("condition")

    @property
    def fingerprint(self) -> str | None:
        return self.provenance.get("fingerprint")

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


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) \
            or not isinstance(data.get("configs"), dict):
        raise DataError(f"{path}: not an lm-eval results file (no 'results' and 'configs' objects)")
    return data


def _model_args(config: Mapping[str, Any]) -> dict[str, Any]:
    args = config.get("model_args") or {}
    if isinstance(args, str):
        from lm_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(args)
    return dict(args) if isinstance(args, Mapping) else {}


def _short_name(name: str) -> str:
    # A local folder (a converted or finetuned model) is named by its last component; hub ids keep
    # their organisation, which is part of the name.
    return Path(name).name if name.startswith(("/", "~", ".")) else name


def _model_identity(config: Mapping[str, Any]) -> tuple[str, str | None, str | None, str | None]:
    args = _model_args(config)
    model_type = str(config.get("model") or "unknown")
    name = next((str(args[k]) for k in MODEL_NAME_KEYS if args.get(k)), None)
    if name is None and model_type == "icl-gen":
        from icl_generalization.weights.default_model import DEFAULT_MODEL

        name = DEFAULT_MODEL
    checkpoint = config.get("checkpoint") or args.get("checkpoint")
    adapter = args.get("peft") or args.get("delta")
    if not checkpoint and adapter:
        checkpoint = _short_name(str(adapter))
    kind = config.get("checkpoint_kind") or args.get("checkpoint_kind")
    sha = config.get("checkpoint_sha256") or args.get("checkpoint_sha256")
    return (_short_name(name or model_type), _short_name(str(checkpoint)) if checkpoint else None,
            str(kind) if kind else None, str(sha) if sha else None)


def _task_metrics(entry: Mapping[str, Any]) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {}
    for key, value in entry.items():
        metric, sep, filt = key.partition(",")
        if not sep or filt != DEFAULT_FILTER:
            continue
        metrics[metric] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return metrics


def _task_n(data: Mapping[str, Any], task: str) -> int:
    entry = data["results"].get(task, {})
    if isinstance(entry.get("sample_len"), int):
        return int(entry["sample_len"])
    effective = (data.get("n-samples") or {}).get(task, {}).get("effective")
    return int(effective) if isinstance(effective, int) else 0


def _provenance(task_config: Mapping[str, Any]) -> dict[str, Any]:
    metadata = task_config.get("metadata") or {}
    provenance = dict(metadata.get("provenance") or {})
    # Older or foreign task configs may lack the recorded provenance; the loader's identity still
    # sits in dataset_kwargs, which lm-eval always writes back.
    for key, value in (task_config.get("dataset_kwargs") or {}).items():
        if key in ("family", "split", "condition"):
            provenance.setdefault(key, value)
    return provenance


def load_run(results_file: Path) -> Run:
    data = _load_json(results_file)
    config = data.get("config") or {}
    model, checkpoint, kind, sha = _model_identity(config)
    tasks: dict[str, TaskResult] = {}
    for name, task_config in data["configs"].items():
        if name not in data["results"]:
            continue
        version = (data.get("versions") or {}).get(name, (task_config.get("metadata") or {}).get("version"))
        tasks[name] = TaskResult(
            name=name, version=str(version), n=_task_n(data, name), metrics=_task_metrics(data["results"][name]),
            provenance=_provenance(task_config), samples_file=samples_file_for(results_file, name),
        )
    date = data.get("date")
    return Run(path=results_file, date_id=date_id_of(results_file),
               date=float(date) if isinstance(date, int | float) else 0.0, model=model,
               model_type=str(config.get("model") or "unknown"), checkpoint=checkpoint, checkpoint_kind=kind,
               checkpoint_sha256=sha, tasks=tasks)


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


def _count(value: Any) -> int | None:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return 1
    return None


def _parse_sample(raw: Mapping[str, Any], where: str) -> Sample:
    doc = raw.get("doc")
    if not isinstance(doc, Mapping):
        doc = {}
    try:
        doc_id = int(raw["doc_id"])
        hashes = (str(raw["doc_hash"]), str(raw["prompt_hash"]), str(raw["target_hash"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: not an lm-eval sample line (missing {exc})") from None
    metric_names = raw.get("metrics") or []
    metrics = {m: float(raw[m]) for m in metric_names if isinstance(raw.get(m), int | float)}
    n_choices = _count(doc.get("choices"))
    if n_choices is None and isinstance(raw.get("arguments"), Mapping):
        n_choices = len(raw["arguments"])  # one loglikelihood request per choice
    n_gold = _count(doc.get("gold"))
    if n_gold is None:
        try:
            n_gold = _count(json.loads(str(raw.get("target"))))
        except json.JSONDecodeError:
            n_gold = None
    return Sample(doc_id=doc_id, key=str(doc.get("id", doc_id)), metrics=metrics, doc_hash=hashes[0],
                  prompt_hash=hashes[1], target_hash=hashes[2], fingerprint=doc.get("fingerprint"),
                  n_choices=n_choices, n_gold=n_gold)


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


def chance_level(task: TaskResult, samples: Mapping[str, Sample] | None = None) -> float | None:
    """Accuracy of guessing: recorded in the provenance, else the mean of |gold| / |choices| over the items."""
    recorded = task.provenance.get("chance")
    if isinstance(recorded, int | float):
        return float(recorded)
    if samples is None and task.samples_file is not None:
        samples = read_samples(task.samples_file)
    if not samples:
        return None
    ratios = [s.n_gold / s.n_choices for s in samples.values() if s.n_gold and s.n_choices]
    return sum(ratios) / len(ratios) if ratios else None
