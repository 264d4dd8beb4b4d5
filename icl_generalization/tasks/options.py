"""``TaskOptions``: every option a task loader understands, parsed once from what lm-eval hands over.

lm-eval calls a task's ``custom_dataset`` with the YAML ``metadata``, ``--metadata`` and *all* ``--model_args``
merged into keyword arguments. Values arrive as lm-eval parsed them (``2048``, ``1000.0`` for ``1e3``) or as
typed (``"2048"``, ``"[512,2048]"``, JSON for ``data_config``); they are coerced here, and a bad one is a
``UserError`` naming the option, the value and what was expected, so the CLI prints one line.

- ``data_seed``, ``data_config`` (generator overrides; a mapping keyed by family name serves a run of several
  families), ``data_source`` (``berglund:PATH``);
- ``tokenizer`` / ``pretrained`` / ``checkpoint`` / ``peft``: only to find the tokenizer that sizes prompts;
- ``max_length``, ``context_budget``, ``context_margin``, ``context_mode``: how in-context prompts are sized;
- ``sweep_lengths``, ``sweep_items``: which lengths a sweep task runs and how many questions at each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, ValidationError, field_validator

from icl_generalization.core.errors import UserError
from icl_generalization.core.validation import describe
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.load import BERGLUND
from icl_generalization.tasks.context import ContextMode
from icl_generalization.tasks.names import SWEEP_LENGTHS


def _whole_number(value: object) -> object:
    # A bool is an int to Python; "True" for a budget is a mistake, not 1.
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    return value


def _json_text(value: object) -> object:
    """A string holding JSON (``"[512,2048]"``, ``'{"n_facts": 20}'``) becomes what it holds."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            decoded: object = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("expected valid JSON") from None
        return decoded
    return value


def _length_list(value: object) -> object:
    value = _json_text(value)
    if isinstance(value, str):  # "512,2048", the form before JSON lists were accepted
        return [part for part in value.split(",") if part.strip()]
    return [value] if isinstance(value, int | float) else value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
Positive = Annotated[int, BeforeValidator(_whole_number), Field(gt=0)]


class TaskOptions(BaseModel):
    """The options of one task load; ``None`` means "not given" where a default depends on other things."""

    # Direct construction refuses unknown names (a typo is a bug); ``from_lm_eval`` picks the known ones.
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_seed: WholeNumber | None = None  # None: the checkpoint's training seed, else the family's default
    data_config: Annotated[dict[str, JsonValue] | None, BeforeValidator(_json_text)] = None
    data_source: str | None = None
    tokenizer: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    peft: str | None = None
    max_length: Positive | None = None  # None: the model config's window
    context_budget: Positive | None = None  # None: the window less context_margin
    context_margin: Annotated[int, BeforeValidator(_whole_number), Field(ge=0)] = 16
    context_mode: ContextMode | None = None  # None: "auto" for a task, "shard" for a sweep
    sweep_lengths: Annotated[tuple[Positive, ...] | None, BeforeValidator(_length_list)] = None
    sweep_items: Positive | None = None  # None: every question of the split

    @field_validator("data_config")
    @classmethod
    def _one_shape(cls, config: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if config:
            keyed = [k for k in config if k in FAMILIES]
            if keyed and len(keyed) != len(config):
                raise ValueError(f"expected either generator fields or family names as keys, not a mix "
                                 f"(family names: {', '.join(keyed)})")
            if keyed and not all(isinstance(config[k], dict) for k in keyed):
                raise ValueError("expected a mapping of generator fields under each family name")
        return config

    @field_validator("data_source")
    @classmethod
    def _known_source(cls, source: str | None) -> str | None:
        if source is not None:
            kind, _, path = source.partition(":")
            if kind != BERGLUND or not path:
                raise ValueError(f"expected {BERGLUND}:PATH")
        return source

    @field_validator("sweep_lengths")
    @classmethod
    def _sweep_metrics(cls, lengths: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if lengths is None:
            return None
        if not lengths or set(lengths) - set(SWEEP_LENGTHS):
            raise ValueError(f"expected lengths among the sweep metrics {list(SWEEP_LENGTHS)}")
        return tuple(sorted(set(lengths)))

    @classmethod
    def from_lm_eval(cls, kwargs: Mapping[str, object]) -> TaskOptions:
        """The options among lm-eval's keyword arguments.

        Everything else there is the model's (any ``--model_args`` entry reaches the loaders too) or lm-eval's
        own (``version``, ``config_source``), so unknown names are left alone here rather than refused.
        """
        given = {k: v for k, v in kwargs.items() if k in cls.model_fields}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise UserError(describe(exc, "task option")) from None

    def overrides_for(self, family: str) -> dict[str, JsonValue]:
        """Generator overrides for ``family``: the fields themselves, or the entry under its name."""
        return family_overrides(family, self.data_config)


def family_overrides(family: str, data_config: Mapping[str, JsonValue] | None) -> dict[str, JsonValue]:
    """``data_config`` as one family's overrides (a mapping keyed by family name holds each family's own)."""
    if not data_config:
        return {}
    if any(k in FAMILIES for k in data_config):
        entry = data_config.get(family) or {}
        return dict(entry) if isinstance(entry, dict) else {}
    return dict(data_config)


# Options that the model reads as well (``HFLM``/``ICLGenLM`` arguments): the loaders only use them to find the
# tokenizer and window. Every other option is the loaders' alone, and the model class must drop it.
MODEL_ARGS = frozenset({"tokenizer", "pretrained", "checkpoint", "peft", "max_length"})
TASK_ONLY_OPTIONS = frozenset(TaskOptions.model_fields) - MODEL_ARGS

