"""The dataset families. Each family module exposes ``FAMILY``, ``GENERATOR_VERSION``, ``SPLITS``, a frozen
config dataclass and a pure ``generate(config, rng, seed)``; this registry is the one place that lists them.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from icl_generalization.core.errors import UserError
from icl_generalization.data.families import reversal_curse, semantic, simple_reversal, syllogism
from icl_generalization.data.records import Dataset

DEFAULT_SEED = 1234


@dataclass(frozen=True)
class Family:
    name: str
    generator_version: str
    splits: tuple[str, ...]
    config_cls: type
    generate: Callable[..., Dataset]
    description: str
    # Changes whenever the family's data or prompts do, so that `icl-gen compare` refuses to put a result of the
    # old tasks beside one of the new.
    task_version: float
    # The split the family's long-context sweep asks: the study's headline generalization test of that family.
    sweep_split: str


FAMILIES: dict[str, Family] = {
    reversal_curse.FAMILY: Family(
        name=reversal_curse.FAMILY, generator_version=reversal_curse.GENERATOR_VERSION,
        splits=reversal_curse.SPLITS, config_cls=reversal_curse.ReversalCurseConfig,
        generate=reversal_curse.generate,
        description="fictional people described in one direction (Berglund et al. 2023)",
        task_version=1.0, sweep_split="p2d_reverse",
    ),
    simple_reversal.FAMILY: Family(
        name=simple_reversal.FAMILY, generator_version=simple_reversal.GENERATOR_VERSION,
        splits=simple_reversal.SPLITS, config_cls=simple_reversal.SimpleReversalConfig,
        generate=simple_reversal.generate,
        description="comparisons between nonsense entities, tested reversed",
        task_version=1.0, sweep_split="reversal",
    ),
    syllogism.FAMILY: Family(
        name=syllogism.FAMILY, generator_version=syllogism.GENERATOR_VERSION, splits=syllogism.SPLITS,
        config_cls=syllogism.SyllogismConfig, generate=syllogism.generate,
        description="two premises over nonsense terms; every valid conclusion is gold",
        task_version=1.0, sweep_split="conclusion",
    ),
    semantic.FAMILY: Family(
        name=semantic.FAMILY, generator_version=semantic.GENERATOR_VERSION, splits=semantic.SPLITS,
        config_cls=semantic.SemanticConfig, generate=semantic.generate,
        description="a real taxonomy of animals and objects in nonsense words",
        # 1.1: answers repeat at most twice per split, distractors frequency-balanced
        task_version=1.1, sweep_split="reversal",
    ),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown dataset family {name!r}; choose from {', '.join(FAMILIES)}") from None


def make_config(family: Family, overrides: Mapping[str, Any] | None = None) -> Any:
    """Build a family's config from keyword overrides, with messages that name the bad field."""
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(family.config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"{family.name}: unknown config field(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(fields))}")
    try:
        return family.config_cls(**overrides)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{family.name}: {exc}") from None


def build(name: str, seed: int = DEFAULT_SEED, overrides: Mapping[str, Any] | None = None) -> Dataset:
    """Generate a family's dataset: same name, seed and overrides give byte-identical records."""
    family = get_family(name)
    config = make_config(family, overrides)
    return family.generate(config, random.Random(seed), seed=seed)
