"""The syllogism checker: premises are parsed from the training text and every option is decided by brute-force
model checking over the 2^8 Venn diagrams of three terms, not by the generator's rules of distribution (it
imports nothing from the generator; a test proves the two methods agree on every premise pair).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from icl_generalization.data.records import Dataset

Triple = tuple[str, str, str]  # (quantifier, subject, object)
_STATEMENT = re.compile(r"(All|No|Some) ([a-z]+) are ([a-z]+)\.")


def _holds(statement: Triple, regions: Sequence[Mapping[str, bool]]) -> bool:
    quantifier, a, b = statement
    if quantifier == "All":
        return not any(r[a] and not r[b] for r in regions)
    if quantifier == "No":
        return not any(r[a] and r[b] for r in regions)
    if quantifier == "Some":
        return any(r[a] and r[b] for r in regions)
    raise ValueError(f"unknown quantifier {quantifier!r}")


def valid_conclusions(premises: Sequence[Triple], options: Sequence[Triple],
                      existential_import: bool = False) -> list[bool]:
    """For each option: is it true in every model of the premises?

    A model says which of the 2^n regions of the Venn diagram of the n terms are inhabited. Without existential
    import (the default, modern logic) ``All X are Y`` holds when no X is outside Y, even if there are no X;
    ``existential_import=True`` keeps only the models in which every term is inhabited (Aristotelian reading).
    """
    terms = sorted({t for s in (*premises, *options) for t in s[1:]})
    regions = [dict(zip(terms, bits, strict=True)) for bits in itertools.product((False, True), repeat=len(terms))]
    valid = [True] * len(options)
    for inhabited in itertools.product((False, True), repeat=len(regions)):
        model = [r for r, on in zip(regions, inhabited, strict=True) if on]
        if existential_import and not all(any(r[t] for r in model) for t in terms):
            continue
        if all(_holds(p, model) for p in premises):
            valid = [v and _holds(o, model) for v, o in zip(valid, options, strict=True)]
    return valid


def check_syllogism(ds: Dataset, existential_import: bool = False) -> list[str]:
    problems: list[str] = []
    docs = ds.doc_index()
    for item in ds.test:
        doc_ids = {d for group in item.needs for d in group}
        premises = [tuple(m.groups()) for d in sorted(doc_ids) for m in _STATEMENT.finditer(docs[d].text)]
        options = [_STATEMENT.fullmatch(c.strip()) for c in item.choices]
        if len(premises) != 2 or any(o is None for o in options):
            problems.append(f"{item.id}: cannot read two premises and six statements")
            continue
        parsed = [tuple(o.groups()) for o in options if o is not None]
        valid = valid_conclusions(premises, parsed, existential_import)  # type: ignore[arg-type]
        expected = tuple(i for i, ok in enumerate(valid) if ok)
        if expected != tuple(sorted(item.gold)):
            problems.append(f"{item.id}: gold {sorted(item.gold)} but the valid options are {list(expected)}")
    return problems
