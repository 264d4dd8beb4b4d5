"""What a dataset family declares, in one typed object that every stage reads.

A family is *data plus three functions* (generate, check, and the config's validation), so it is declared as a
frozen :class:`FamilySpec`, one per family package, rather than as a class per family: the spec validates its
own declaration when the module is imported (a sweep split that is not a split, a paper claim about a split the
family lacks, a preset size that is not a config field all fail at once, naming the family), which a bare
``typing.Protocol`` could only promise to mypy. The registry and every consumer (task pack, presets, orderings,
check-data, docs) see families through the :class:`Family` protocol, whose members never mention the family's
own config type: that is what lets one ``dict[str, Family]`` hold specs of different config classes with no
``Any`` at the seam, while each ``FamilySpec[C]`` keeps its ``generate(config: C, ...)`` fully typed.
"""

from __future__ import annotations

import dataclasses
import random
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from icl_generalization.core.errors import UserError
from icl_generalization.core.validation import describe
from icl_generalization.data.records import Dataset, TestItem

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Values a generator override can take (they arrive from JSON: --config, --metadata data_config, presets).
ConfigValue = int | float | str | bool
Relation = Literal[">", "<", ">=", "<=", "~"]
Checker = Callable[[Dataset], list[str]]
C = TypeVar("C", bound="DataclassInstance")


@dataclass(frozen=True)
class Claim:
    """One of the paper's expected orderings: ``left`` on ``split`` stands in ``relation`` to ``right``.

    ``right`` is a condition ("ICL", "FT", "augmented FT", "pretrained") or "chance"; it is read on
    ``right_split`` (default: ``split``). "~" means within 2 standard errors. Plain data: the analysis stage
    evaluates claims against a leaderboard, the family only states them. ``from_paper`` is False for a claim the
    paper does not report for this family (the study's general ordering applied to a family it lists without
    results); reports mark those.
    """

    split: str
    left: str
    relation: Relation
    right: str
    right_split: str | None = None
    from_paper: bool = True

    def text(self) -> str:
        if self.right_split is None:
            return f"{self.left} {self.relation} {self.right}"
        return f"{self.left}: {self.split} {self.relation} {self.right_split}"


class Family(Protocol):
    """The seam: what the stages above the data layer may know about a family."""

    @property
    def name(self) -> str: ...
    @property
    def generator_version(self) -> str: ...
    @property
    def task_version(self) -> float: ...
    @property
    def splits(self) -> tuple[str, ...]: ...
    @property
    def inference_splits(self) -> frozenset[str]: ...
    @property
    def reversal_splits(self) -> frozenset[str]: ...
    @property
    def sweep_split(self) -> str: ...
    @property
    def chance(self) -> Mapping[str, float]: ...
    @property
    def description(self) -> str: ...
    @property
    def claims(self) -> tuple[Claim, ...]: ...
    @property
    def preset_sizes(self) -> Mapping[str, Mapping[str, ConfigValue]]: ...

    def config_fields(self) -> dict[str, ConfigValue]:
        """Every generator field with its default (the study's size)."""
        ...

    def build(self, seed: int, overrides: Mapping[str, object] | None = None) -> Dataset:
        """The family's dataset for this seed and these overrides (validated; a bad one is a UserError)."""
        ...

    def check(self, ds: Dataset) -> list[str]:
        """Problems with the dataset's gold answers, found without the generator's code (empty: sound)."""
        ...

    def cluster_of(self, item: TestItem) -> str:
        """The fact ``item`` tests: items of one cluster are not independent evidence (clustered errors)."""
        ...

    def form_of(self, item: TestItem) -> str | None:
        """The item's form (a syllogistic mood, say) for per-form breakdowns; None when the family has none."""
        ...


@dataclass(frozen=True)
class FamilySpec(Generic[C]):
    name: str
    generator_version: str
    # Changes whenever the family's data or prompts do, so that `icl-gen compare` refuses to put a result of the
    # old tasks beside one of the new.
    task_version: float
    splits: tuple[str, ...]
    # Splits that ask for something no training document states (a reversal, a chain, a held-out category);
    # the others ask a stated fact in new words, i.e. whether the fact was learned at all.
    inference_splits: frozenset[str]
    # The inference splits whose only inference is reading a stated fact backwards: the document stating the fact
    # holds both the question's entity and the gold, so co-occurrence there is expected (shortcut audit).
    reversal_splits: frozenset[str]
    # The split the family's long-context sweep asks: the study's headline generalization test of that family.
    sweep_split: str
    # Chance accuracy per split on the default dataset (a test recomputes it from the items).
    chance: Mapping[str, float]
    description: str
    config_cls: type[C]
    generate: Callable[[C, random.Random, int], Dataset]
    checker: Checker
    # The fact an item tests, from its metadata (the person, the compared pair, the premise document...).
    cluster_key: Callable[[TestItem], str]
    claims: tuple[Claim, ...] = ()
    # The item's form, for per-form breakdowns of a score (``icl-gen rescore``), from its metadata; None when the
    # family's items have no forms worth telling apart. Recorded in every task row as ``form``.
    form_key: Callable[[TestItem], str] | None = None
    # preset name -> generator overrides; a preset runs exactly the families that declare a size for it.
    preset_sizes: Mapping[str, Mapping[str, ConfigValue]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = set(self.splits)
        wrong = [f"sweep split {self.sweep_split!r}"] if self.sweep_split not in known else []
        wrong += [f"inference split {s!r}" for s in sorted(self.inference_splits - known)]
        wrong += [f"reversal split {s!r} (not an inference split)" for s in sorted(self.reversal_splits
                                                                                  - self.inference_splits)]
        wrong += [f"chance for {s!r}" for s in sorted(set(self.chance) ^ known)]
        claimed = {s for c in self.claims for s in (c.split, c.right_split) if s is not None}
        wrong += [f"claim on split {s!r}" for s in sorted(claimed - known)]
        if wrong:
            raise ValueError(f"family {self.name}: {', '.join(wrong)} does not match its splits {self.splits}")
        for preset, sizes in self.preset_sizes.items():
            try:
                self.make_config(sizes)
            except UserError as exc:
                raise ValueError(f"preset {preset}: {exc}") from None

    @cached_property
    def _fields_model(self) -> type[BaseModel]:
        # Strict: "5" is not 5 and True is not 1 (a JSON override of the wrong type is refused, not coerced).
        hints = typing.get_type_hints(self.config_cls)
        fields: dict[str, Any] = {f.name: (hints[f.name], ... if f.default is dataclasses.MISSING else f.default)
                                  for f in dataclasses.fields(self.config_cls)}
        return create_model(f"{self.name}_config", __config__=ConfigDict(strict=True, extra="forbid"), **fields)

    def make_config(self, overrides: Mapping[str, object] | None = None) -> C:
        """The family's config from keyword overrides; an error names the field, the value and what was expected."""
        try:
            values = self._fields_model.model_validate(dict(overrides or {})).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise UserError(f"{describe(exc, self.name)} (fields: {', '.join(self.config_fields())})") from None
        try:
            return self.config_cls(**values)
        except ValueError as exc:  # the config's own range checks, which name their field
            raise UserError(f"{self.name}: {exc}") from None

    def config_fields(self) -> dict[str, ConfigValue]:
        return {f.name: f.default for f in dataclasses.fields(self.config_cls) if isinstance(f.default, ConfigValue)}

    def build(self, seed: int, overrides: Mapping[str, object] | None = None) -> Dataset:
        return self.generate(self.make_config(overrides), random.Random(seed), seed)

    def check(self, ds: Dataset) -> list[str]:
        return self.checker(ds)

    def cluster_of(self, item: TestItem) -> str:
        return self.cluster_key(item)

    def form_of(self, item: TestItem) -> str | None:
        return self.form_key(item) if self.form_key is not None else None
