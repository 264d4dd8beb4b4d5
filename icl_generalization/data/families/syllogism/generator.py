"""Simple syllogisms over nonsense terms.

Training item (one document each)::

    The relationships between glon, troff and yomp are: All glon are yomp. All troff are glon.

Test item (split ``conclusion``, one per training item): the prompt names the two end terms
(``The relationships between yomp and troff are:``) and the six statements ``{All, Some, No} x {both
directions}`` are scored. Gold is every statement that follows.

Semantics (**ours**; the study is silent): modern (Boolean) logic, *without existential import*: ``All X are
Y`` does not imply that any X exists. This is what makes the study's example have exactly one correct answer
(``All troff are yomp``; with import, ``Some troff are yomp`` would follow too). An ``All`` conclusion has one
gold statement, but ``Some`` and ``No`` read the same in both directions, so those items have two: chance is
1/6 for Barbara-like items and 1/3 for the rest (0.316 over the default 69 items, recorded per task).

Gold is decided here with the classical *rules of distribution* (Copi's rules), a method that shares nothing
with ``checkers.valid_conclusions``, which model-checks the 256 Venn diagrams; a test proves they agree on every
premise pair. Only premises of the forms A (All), E (No) and I (Some) occur: a premise ``Some X are not Y``
can only support an O conclusion, which the study does not use.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from functools import cache

from icl_generalization.data.lexicon import make_words
from icl_generalization.data.records import Dataset, TestItem, TrainDoc

NAME = "syllogism"
GENERATOR_VERSION = "1.1"
SPLITS = ("conclusion",)
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


@dataclass(frozen=True)
class SyllogismConfig:
    """Default: the study's 69 training items (and one test item each)."""

    n_items: int = 69

    def __post_init__(self) -> None:
        if not 1 <= self.n_items <= 300:
            raise ValueError(f"n_items must be in 1..300, got {self.n_items}")


def generate(config: SyllogismConfig, rng: random.Random, seed: int = 0) -> Dataset:
    forms = list(valid_forms())
    # Balanced: every form appears floor(n/k) or ceil(n/k) times; which forms get the extra item is random.
    order = list(range(len(forms)))
    rng.shuffle(order)
    plan = [order[i % len(forms)] for i in range(config.n_items)]
    rng.shuffle(plan)
    # Three fresh words per item: shared terms between items would let one item's premises change another's.
    words = make_words(3 * config.n_items, rng, pool=NAME, max_shared_head=1 if config.n_items <= 90 else 4)
    train: list[TrainDoc] = []
    test: list[TestItem] = []
    for i, form_index in enumerate(plan):
        s, m, p = words[3 * i: 3 * i + 3]
        form = forms[form_index]
        premises = (form.major, form.minor)
        names = {"S": s, "M": m, "P": p}
        # Premise order is varied; each premise keeps the direction its figure gives it.
        shown = list(premises)
        rng.shuffle(shown)
        listed = [s, m, p]
        rng.shuffle(listed)
        doc_id = f"item{i:03d}"
        text = (f"The relationships between {listed[0]}, {listed[1]} and {listed[2]} are: "
                + " ".join(render(st, names) for st in shown))
        train.append(TrainDoc(id=doc_id, text=text, entities=(s, m, p)))
        ends = [s, p]
        rng.shuffle(ends)
        opts = options()
        rng.shuffle(opts)
        gold = tuple(j for j, c in enumerate(opts) if follows(premises, c))
        test.append(TestItem(
            id=f"conclusion-{i:03d}", split="conclusion",
            prompt=f"The relationships between {ends[0]} and {ends[1]} are:",
            choices=tuple(" " + render(c, names) for c in opts), gold=gold, needs=((doc_id,),), entities=(s, p, m),
            meta={"form": form.name},
        ))
    return Dataset(family=NAME, generator_version=GENERATOR_VERSION, seed=seed, config=asdict(config),
                   train=tuple(train), test=tuple(test))

