"""Checks every family's dataset gets, and the dispatch to the family's own gold checker.

Each family's gold checker lives in its package (``families/<name>/checker.py``) and shares no code with its
generator; this module adds what holds for every family:

- the dataset has test items, of exactly the family's splits, and every document an item ``needs`` exists;
- the **answer-frequency** check: in each split, the strategy "pick the option that appears most often across
  the split's items" must not beat chance, or a model could score without knowing any fact (a word that is the
  answer to many items would otherwise give itself away by its frequency).

Each check returns a list of problems (empty when the dataset is sound).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from icl_generalization.core.errors import DataError
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.family import Family
from icl_generalization.data.records import Dataset, TestItem, chance_rate


def check_needs(ds: Dataset) -> list[str]:
    ids = {d.id for d in ds.train}
    unknown = [f"{item.id}: needs unknown document {d}" for item in ds.test for group in item.needs for d in group
               if d not in ids]
    return unknown + [f"{item.id}: an empty needs group" for item in ds.test if any(not g for g in item.needs)]


def frequency_baseline(items: Sequence[TestItem]) -> tuple[float, float]:
    """Accuracy of "pick the option seen most often in these items" (ties shared), and chance accuracy."""
    seen = Counter(choice for item in items for choice in item.choices)
    score = 0.0
    for item in items:
        top = max(seen[c] for c in item.choices)
        picked = [i for i, c in enumerate(item.choices) if seen[c] == top]
        score += sum(i in item.gold for i in picked) / len(picked)
    return score / len(items), chance_rate(items)


def check_answer_frequency(ds: Dataset, margin: float = 0.1, z: float = 3.0) -> list[str]:
    """Splits where the frequency strategy beats chance by more than ``margin`` *and* by ``z`` standard errors.

    The standard error is the binomial one of a split this size at chance: on a few dozen items the strategy's
    score wanders by several points either way without any bias in the data.
    """
    problems = []
    for split in ds.splits:
        items = ds.items(split)
        baseline, chance = frequency_baseline(items)
        if baseline > chance + max(margin, z * math.sqrt(chance * (1 - chance) / len(items))):
            problems.append(f"split {split}: picking the most frequent option scores {baseline:.3f} against chance "
                            f"{chance:.3f}; answers give themselves away by how often they occur")
    return problems


def check_splits(ds: Dataset, family: Family) -> list[str]:
    problems = [f"split {s}: not a split of {family.name} ({', '.join(family.splits)})"
                for s in ds.splits if s not in family.splits]
    return problems + [f"split {s}: missing (the dataset has no items of it)" for s in family.splits
                       if s not in ds.splits]


def check_dataset(ds: Dataset) -> list[str]:
    """Every problem found; a dataset whose gold cannot be checked at all is refused (a DataError).

    The family's own gold checker runs only when the splits are the family's and every needed document exists.
    """
    if ds.family not in FAMILIES:
        raise DataError(f"dataset family {ds.family!r} has no gold checker; known families: {', '.join(FAMILIES)}")
    if not ds.test:
        raise DataError(f"{ds.family} dataset {ds.fingerprint()[:12]} has no test split: there is no gold to check")
    family = FAMILIES[ds.family]
    problems = check_splits(ds, family) + check_needs(ds)
    if not problems:
        problems += family.check(ds)
    return problems + check_answer_frequency(ds)
