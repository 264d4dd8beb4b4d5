"""The shape of lm-eval 0.4.13's output files, as pydantic models: what ``results.py`` accepts at the boundary.

Only what the analysis reads is declared; every other key lm-eval writes is allowed and ignored (``extra``),
so results of older package versions and of foreign tasks keep loading. What is declared is strict: a number
must be a JSON number (not a string, not a boolean), finite (json.loads accepts ``NaN`` and ``Infinity``),
and an accuracy must lie in [0, 1]. A violation becomes one ``DataError`` line naming the file, the field,
the value and what was expected.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from icl_generalization.core.errors import DataError
from icl_generalization.core.validation import describe

DEFAULT_FILTER = "none"
# Per-item means of 0/1 outcomes: their aggregate and every logged item value lie in [0, 1].
PROBABILITY_METRICS = ("acc", "acc_norm", "exact_match", "acc_calibrated")
NOT_AVAILABLE = "N/A"  # lm-eval's stderr for one-sample tasks and when bootstrapping is off

FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Probability = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
Stderr = Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)] | Literal["N/A"]
Count = Annotated[int, Field(strict=True, ge=0)]
PositiveCount = Annotated[int, Field(strict=True, ge=1)]
Text = Annotated[str, Field(strict=True)]
Version = Annotated[int, Field(strict=True)] | FiniteNumber | Text

_PROBABILITY: TypeAdapter[float] = TypeAdapter(Probability)
_STDERR: TypeAdapter[float | str] = TypeAdapter(Stderr)
_SCORE: TypeAdapter[float | str] = TypeAdapter(FiniteNumber | Literal["N/A"])
_ITEM_SCORE: TypeAdapter[float] = TypeAdapter(FiniteNumber)


class _Lenient(BaseModel):
    """Declared fields are checked; undeclared ones are kept unchecked (lm-eval writes many we never read)."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _check_value(adapter: TypeAdapter[float] | TypeAdapter[float | str], key: str, value: object) -> None:
    """Validate one key-dependent value, raising an error that names the key (pydantic's location stops at
    the object holding it, because the key is dynamic)."""
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        alternatives = dict.fromkeys(e["msg"].removeprefix("Input should be ").rstrip(".") for e in exc.errors())
        expected = "Input should be " + " or ".join(alternatives)
        raise PydanticCustomError("invalid_value", "{expected}",
                                  {"field": key, "value": value, "expected": expected}) from None


class TaskScores(_Lenient):
    """One entry of ``results``: ``"<metric>,<filter>"`` keys beside ``alias``, ``sample_len`` and the like."""

    sample_len: Count | None = None

    @model_validator(mode="after")
    def _metrics_are_numbers(self) -> TaskScores:
        for key, value in (self.model_extra or {}).items():
            metric, sep, _ = key.partition(",")
            if not sep:
                continue
            if metric.endswith("_stderr"):
                _check_value(_STDERR, key, value)
            elif metric in PROBABILITY_METRICS:
                _check_value(_PROBABILITY, key, value)
            else:
                _check_value(_SCORE, key, value)
        return self

    def metrics(self) -> dict[str, float | None]:
        """The default filter's metrics (and ``<metric>_stderr``) by name; ``N/A`` becomes None."""
        out: dict[str, float | None] = {}
        for key, value in (self.model_extra or {}).items():
            metric, sep, filt = key.partition(",")
            if sep and filt == DEFAULT_FILTER:
                out[metric] = value if isinstance(value, int | float) else None
        return out


class Provenance(_Lenient):
    """What the package's dataset loader records in each task's ``metadata.provenance``."""

    family: Text | None = None
    split: Text | None = None
    # A forgetting control's task names its control instead of a family and split.
    control: Text | None = None
    source: Text | None = None
    source_version: Text | None = None
    condition: Text | None = None
    fingerprint: Text | None = None
    chance: Probability | None = None
    n_items: PositiveCount | None = None
    n_prompts: PositiveCount | None = None


class TaskMetadata(_Lenient):
    version: Version | None = None
    provenance: Provenance | None = None


class DatasetKwargs(_Lenient):
    """The loader's arguments, which lm-eval always writes back: the task identity of results older than
    the recorded provenance."""

    family: Text | None = None
    split: Text | None = None
    condition: Text | None = None


class TaskConfig(_Lenient):
    metadata: TaskMetadata | None = None
    dataset_kwargs: DatasetKwargs | None = None

    def provenance(self) -> Provenance:
        recorded = self.metadata.provenance if self.metadata and self.metadata.provenance else Provenance()
        kwargs = self.dataset_kwargs or DatasetKwargs()
        return recorded.model_copy(update={
            "family": recorded.family or kwargs.family, "split": recorded.split or kwargs.split,
            "condition": recorded.condition or kwargs.condition})


class RunConfig(_Lenient):
    """The run's ``config``; the adapter loader adds the checkpoint's name, kind and digest."""

    model: Text | None = None
    model_args: Text | dict[str, JsonValue] | None = None
    # The base model the package's class loaded (``get_model_info``): with ``checkpoint=`` the model arguments
    # name no model, and the checkpoint's manifest decided it.
    base_model: Text | None = None
    checkpoint: Text | None = None
    checkpoint_kind: Text | None = None
    checkpoint_sha256: Text | None = None
    # What the checkpoint's augmentation added (its manifest's record), for the tokens-added view of compare.
    checkpoint_strategy: Text | None = None
    checkpoint_tokens_added: Count | None = None
    checkpoint_token_budget: PositiveCount | None = None


class SampleCounts(_Lenient):
    original: Count | None = None
    effective: Count | None = None


class ResultsFile(_Lenient):
    results: dict[str, TaskScores]
    configs: dict[str, TaskConfig]
    versions: dict[str, Version] = Field(default_factory=dict)
    n_samples: dict[str, SampleCounts] = Field(default_factory=dict, alias="n-samples")
    config: RunConfig = Field(default_factory=RunConfig)
    date: FiniteNumber | None = None


class SampleDoc(_Lenient):
    """The logged document; ours carry an ``id`` that pairs items across runs, the dataset fingerprint, and the
    ``cluster`` (the fact the item tests) that clustered standard errors group by; older logs lack it."""

    id: Text | Annotated[int, Field(strict=True)] | None = None
    cluster: Text | None = None
    choices: list[JsonValue] | None = None
    gold: list[Annotated[int, Field(strict=True)]] | Annotated[int, Field(strict=True)] | None = None
    fingerprint: Text | None = None


class SampleLine(_Lenient):
    """One line of ``samples_<task>_<date>.jsonl``: the item's hashes and its per-item metric values."""

    doc_id: Count
    doc: SampleDoc = Field(default_factory=SampleDoc)
    target: JsonValue = None
    filter: Text = DEFAULT_FILTER
    metrics: list[Text] = Field(default_factory=list)
    doc_hash: Text
    prompt_hash: Text
    target_hash: Text
    arguments: dict[str, JsonValue] | list[JsonValue] | None = None

    @model_validator(mode="after")
    def _metric_values_are_numbers(self) -> SampleLine:
        extra = self.model_extra or {}
        for name in self.metrics:
            if name not in extra:
                raise PydanticCustomError("invalid_value", "{expected}", {
                    "field": name, "value": None, "expected": "the value of a metric listed in 'metrics'"})
            _check_value(_PROBABILITY if name in PROBABILITY_METRICS else _ITEM_SCORE, name, extra[name])
        return self

    def metric_values(self) -> dict[str, float]:
        extra = self.model_extra or {}
        return {name: float(extra[name]) for name in self.metrics}


def invalid(where: str, what: str, exc: ValidationError) -> DataError:
    """One line naming the file (and line), the field, the value and what was expected."""
    return DataError(describe(exc, f"{where}: not {what}"))
