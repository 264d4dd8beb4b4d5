"""The syllogism checker: premises are parsed from the training text and every option is decided by searching
the Venn diagram of the terms for a countermodel, not by the generator's rules (it imports nothing from the
generator; tests prove the two methods agree on every premise pair and every tree of three premises).

An option follows when the premises plus its negation have no model. A model says which regions of the Venn
diagram are inhabited. Universal statements (All, No) only *empty* regions and particular ones (Some, Some-not)
only ask for *one inhabited* region, so a set of statements has a model exactly when the model that inhabits
every region no universal statement empties satisfies all the particular ones: one model to check per question,
instead of all 2^(2^n) of them (a test checks this against the brute-force enumeration on three terms).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from icl_generalization.data.records import Dataset

Triple = tuple[str, str, str]  # (quantifier, subject, object); quantifier "Some-not" never appears in the text
_STATEMENT = re.compile(r"(All|No|Some) ([a-z]+) are ([a-z]+)\.")
# The balanced split's extra option: true when no categorical statement about the two terms follows.
_NOTHING = re.compile(r"(Nothing) follows about ([a-z]+) and ([a-z]+)\.")
_NEGATION = {"All": "Some-not", "No": "Some", "Some": "No", "Some-not": "All"}
Region = Mapping[str, bool]


def _empties(statement: Triple, region: Region) -> bool:
    quantifier, a, b = statement
    return (quantifier == "All" and region[a] and not region[b]) or (quantifier == "No" and region[a] and region[b])


def _witness(statement: Triple, region: Region) -> bool:
    quantifier, a, b = statement
    return region[a] and region[b] == (quantifier == "Some")


def _satisfiable(statements: Sequence[Triple], terms: Sequence[str], existential_import: bool) -> bool:
    regions = [dict(zip(terms, bits, strict=True)) for bits in itertools.product((False, True), repeat=len(terms))]
    inhabited = [r for r in regions if not any(_empties(s, r) for s in statements)]
    particular = [s for s in statements if s[0] in ("Some", "Some-not")]
    # Existential import: every term has a member, i.e. "Some t are t" for each term.
    particular += [("Some", t, t) for t in terms] if existential_import else []
    return all(any(_witness(s, r) for r in inhabited) for s in particular)


def _follows(premises: Sequence[Triple], statement: Triple, terms: Sequence[str], existential_import: bool) -> bool:
    if statement[0] == "Nothing":
        _, a, b = statement
        about = [(q, x, y) for q in _NEGATION for x, y in ((a, b), (b, a))]
        return not any(_follows(premises, s, terms, existential_import) for s in about)
    negated = (_NEGATION[statement[0]], statement[1], statement[2])
    return not _satisfiable([*premises, negated], terms, existential_import)


def valid_conclusions(premises: Sequence[Triple], options: Sequence[Triple],
                      existential_import: bool = False) -> list[bool]:
    """For each option: is it true in every model of the premises?

    Without existential import (the default, modern logic) ``All X are Y`` holds when no X is outside Y, even if
    there are no X; ``existential_import=True`` keeps only the models in which every term is inhabited
    (Aristotelian reading). An option ``("Nothing", X, Y)`` holds when no All, No, Some or Some-not statement
    about X and Y, in either direction, follows.
    """
    terms = sorted({t for s in (*premises, *options) for t in s[1:]})
    return [_follows(premises, o, terms, existential_import) for o in options]


def _parse(text: str) -> Triple | None:
    match = _STATEMENT.fullmatch(text) or _NOTHING.fullmatch(text)
    return (match[1], match[2], match[3]) if match else None


def check_syllogism(ds: Dataset, existential_import: bool = False) -> list[str]:
    problems: list[str] = []
    docs = ds.doc_index()
    for item in ds.test:
        doc_ids = {d for group in item.needs for d in group}
        premises: list[Triple] = [(m[1], m[2], m[3]) for d in sorted(doc_ids)
                                  for m in _STATEMENT.finditer(docs[d].text)]
        parsed = [_parse(c.strip()) for c in item.choices]
        options = [o for o in parsed if o is not None]
        if len(premises) < 2 or len(options) != len(parsed):
            problems.append(f"{item.id}: cannot read the premises (two or more) and every option as a statement")
            continue
        terms = sorted({t for s in (*premises, *options) for t in s[1:]})
        if not _satisfiable(premises, terms, existential_import):
            problems.append(f"{item.id}: the premises contradict each other, so every option would follow")
            continue
        valid = valid_conclusions(premises, options, existential_import)
        expected = tuple(i for i, ok in enumerate(valid) if ok)
        if expected != tuple(sorted(item.gold)):
            problems.append(f"{item.id}: gold {sorted(item.gold)} but the valid options are {list(expected)}")
    return problems
