"""The registry of dataset families: the one place that lists them (a new family is its package plus one line).

Each family package declares a :class:`~icl_generalization.data.family.FamilySpec` named ``FAMILY``; every
stage (task pack, presets, orderings, check-data, docs) reads families from here, through the ``Family``
protocol.
"""

from __future__ import annotations

from collections.abc import Mapping

from icl_generalization.core.errors import UserError
from icl_generalization.data.families import process, reversal_curse, semantic, simple_reversal, syllogism
from icl_generalization.data.family import Family
from icl_generalization.data.records import Dataset

DEFAULT_SEED = 1234

# Order matters: it is the order of the task pack's groups and of the leaderboard's columns.
FAMILIES: dict[str, Family] = {family.name: family for family in (
    reversal_curse.FAMILY,
    simple_reversal.FAMILY,
    syllogism.FAMILY,
    semantic.FAMILY,
    process.FAMILY,
)}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown dataset family {name!r}; choose from {', '.join(FAMILIES)}") from None


def build(name: str, seed: int = DEFAULT_SEED, overrides: Mapping[str, object] | None = None) -> Dataset:
    """Generate a family's dataset: same name, seed and overrides give byte-identical records."""
    return get_family(name).build(seed, overrides)
