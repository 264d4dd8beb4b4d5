"""The classical forms behind the ``conclusion`` split, decided by the rules of distribution (Copi's rules).

Semantics (**ours**; the study is silent): modern (Boolean) logic, *without existential import*: ``All X are
Y`` does not imply that any X exists. This is what makes the study's example have exactly one correct answer
(``All troff are yomp``; with import, ``Some troff are yomp`` would follow too).

Gold is decided here with the classical *rules of distribution*, a method that shares nothing with the checker,
which searches the Venn diagrams for a countermodel; a test proves they agree on every premise pair. Only
premises of the forms A (All), E (No) and I (Some) occur: a premise ``Some X are not Y`` can only support an O
conclusion, which the study does not use.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

QUANTIFIERS = {"A": "All", "E": "No", "I": "Some"}

# A statement is (mood, subject, predicate) over the term letters "S", "M", "P".
Statement = tuple[str, str, str]


def distributed(statement: Statement, term: str) -> bool:
    """A term is distributed when the statement says something about every member of it."""
    mood, subj, pred = statement
    if term == subj:
        return mood in ("A", "E")
    if term == pred:
        return mood == "E"
    return False


def follows(premises: tuple[Statement, Statement], conclusion: Statement) -> bool:
    """Copi's rules for a categorical syllogism, modern reading (no existential import)."""
    terms = {t for s in premises for t in s[1:]}
    middles = terms - {conclusion[1], conclusion[2]}
    if len(terms) != 3 or len(middles) != 1 or conclusion[1] == conclusion[2]:
        return False
    (middle,) = middles
    if not any(distributed(p, middle) for p in premises):
        return False  # undistributed middle
    for term in conclusion[1:]:
        if distributed(conclusion, term) and not any(distributed(p, term) for p in premises if term in p[1:]):
            return False  # illicit major / minor
    negatives = sum(p[0] == "E" for p in premises)
    if negatives == 2 or (negatives == 1) != (conclusion[0] == "E"):
        return False  # exclusive premises, or a negative premise without a negative conclusion (or vice versa)
    # Existential fallacy: two universal premises cannot give a particular conclusion without import.
    return not (all(p[0] in ("A", "E") for p in premises) and conclusion[0] == "I")


def options() -> list[Statement]:
    return [(mood, a, b) for mood in QUANTIFIERS for a, b in (("S", "P"), ("P", "S"))]


# The four figures: where the middle term stands in the major (M-P) and minor (S-M) premise.
FIGURES = {1: (("M", "P"), ("S", "M")), 2: (("P", "M"), ("S", "M")), 3: (("M", "P"), ("M", "S")),
           4: (("P", "M"), ("M", "S"))}
# Medieval names, for the dataset's metadata only (the forms themselves are found by the rules below).
NAMES = {"AAA1": "Barbara", "EAE1": "Celarent", "AII1": "Darii", "EAE2": "Cesare", "AEE2": "Camestres",
         "AII3": "Datisi", "IAI3": "Disamis", "AEE4": "Calemes", "IAI4": "Dimatis"}


@dataclass(frozen=True)
class Form:
    name: str
    major: Statement
    minor: Statement
    conclusion: Statement  # the traditional conclusion; gold is every option that follows


@cache
def valid_forms() -> tuple[Form, ...]:
    """Every mood and figure with A/E/I premises whose traditional conclusion (about S then P) follows."""
    forms = []
    for figure, ((a1, b1), (a2, b2)) in FIGURES.items():
        for m1, m2, mc in itertools.product(QUANTIFIERS, repeat=3):
            major, minor, conclusion = (m1, a1, b1), (m2, a2, b2), (mc, "S", "P")
            if follows((major, minor), conclusion):
                code = f"{m1}{m2}{mc}{figure}"
                forms.append(Form(NAMES.get(code, code), major, minor, conclusion))
    return tuple(forms)


def render(statement: Statement, names: dict[str, str]) -> str:
    mood, a, b = statement
    return f"{QUANTIFIERS[mood]} {names[a]} are {names[b]}."
