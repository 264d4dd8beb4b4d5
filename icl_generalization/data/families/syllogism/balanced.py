"""The ``balanced`` split: a diagnostic beside the study's ``conclusion`` split that only logic gets above chance.

Why a second split: on the study's items (valid forms with an All, No or Some conclusion) the *atmosphere*
heuristic (answer with the premises' dominant quantifier: No over Some over All) is right on every form, and
the conclusion quantifiers are 31 No, 31 Some, 7 All, so a model-free guess scores 0.95 there. That split is
kept for reproduction; this one is built so that no such guess beats chance:

- **Three premises over four fresh terms**, shaped as a tree (every premise links two terms, all four are
  connected, the two asked terms are never linked directly): either a chain of three steps, or a syllogism with
  a side premise on a third term.
- **Seven options**: the six statements ``{All, No, Some} x {both directions}`` and ``Nothing follows about X
  and Y.``, gold when no categorical statement (A, E, I or O, either direction) about X and Y follows.
- **Fixed shares of conclusion kinds**: All 2/5, No 1/5, Some 1/5, nothing 1/5. With seven options (All has
  one gold of two options, No and Some two of two, nothing one of one) these are the only shares at which each
  "always the option starting with W" guess scores exactly chance, 1/5.
- **Atmosphere is wrong by construction** on the All items (a No or Some premise is present) and the Some items
  (a No premise is present), and on every nothing item; it is right only on the No items: 1/5, chance.

Gold is decided by forward chaining over the classical inference rules (conversion, Barbara, Celarent, Darii,
Ferio, Baroco, Bocardo, and existence from Some), a method that shares nothing with the checker's countermodel
search over Venn diagrams; a test proves the two agree on every tree of three premises.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from functools import cache

from icl_generalization.data.families.syllogism.forms import Statement, render
from icl_generalization.data.records import TestItem, TrainDoc

SPLIT = "balanced"
TERMS = ("S", "P", "M", "N")  # S and P are asked about; M and N are the other two terms
# Conclusion kinds and their shares in fifths (see the module docstring for why these and no others).
KINDS = {"All": 2, "No": 1, "Some": 1, "nothing": 1}
# Moods here are A, E, I (premises and options) and O ("Some X are not Y"), which only ever follows.
_CHAIN = {("A", "A"): "A", ("A", "E"): "E", ("I", "A"): "I", ("I", "E"): "O"}  # Barbara, Celarent, Darii, Ferio


def consequences(premises: Iterable[Statement]) -> frozenset[Statement]:
    """Every A/E/I/O statement derivable from ``premises`` with the classical rules (no existential import).

    ``("I", x, x)`` stands for "some x exist" (what a Some premise asserts of both its terms), which is what lets
    ``All x are y`` yield ``Some x are y`` without existential import being assumed.
    """
    known = set(premises)
    while True:
        new: set[Statement] = set()
        for mood, x, y in known:
            if mood in ("E", "I"):
                new.add((mood, y, x))  # conversion
            if mood == "I":
                new.update({("I", x, x), ("I", y, y)})
        for (m1, x, y), (m2, a, b) in itertools.product(known, repeat=2):
            if y == a and (m1, m2) in _CHAIN:
                new.add((_CHAIN[m1, m2], x, b))
            if m1 == "O" and m2 == "A":
                if b == y:
                    new.add(("O", x, a))  # Baroco: some x are not y, all a are y => some x are not a
                if a == x:
                    new.add(("O", b, y))  # Bocardo: some x are not y, all x are b => some b are not y
        if new <= known:
            return frozenset(known)
        known |= new


def kind(premises: Sequence[Statement]) -> str | None:
    """The conclusion kind between S and P, or None when the options' gold would be of no kind (only an O
    conclusion follows, or All and Some both do)."""
    derived = consequences(premises)
    about = {(m, x, y) for m, x, y in derived if {x, y} == {"S", "P"}}
    stated = {m for m, _, _ in about if m != "O"}  # O is never an option; it only rules out "nothing follows"
    if not about:
        return "nothing"
    if stated == {"A"} and len(about & {("A", "S", "P"), ("A", "P", "S")}) == 1:
        return "All"
    if stated in ({"E"}, {"I"}):  # E and I come in both directions by conversion
        return "No" if stated == {"E"} else "Some"
    return None


def dominant(premises: Sequence[Statement]) -> str:
    """The atmosphere heuristic's answer: No if a premise is negative, else Some if one is particular, else All."""
    moods = {m for m, _, _ in premises}
    return "No" if "E" in moods else "Some" if "I" in moods else "All"


@cache
def _trees() -> tuple[tuple[tuple[str, str], ...], ...]:
    """The spanning trees of the four terms without an S-P edge (the asked pair is never stated)."""
    edges = list(itertools.combinations(TERMS, 2))
    trees = []
    for chosen in itertools.combinations(edges, 3):
        linked = {"S"}
        for _ in range(3):
            linked |= {t for e in chosen if linked & set(e) for t in e}
        if len(linked) == 4 and ("S", "P") not in chosen:
            trees.append(chosen)
    return tuple(trees)


def sample(target: str, rng: random.Random, max_tries: int = 20_000) -> tuple[Statement, ...]:
    """Three premises whose conclusion kind is ``target`` and on which atmosphere is wrong where it can be."""
    for _ in range(max_tries):
        premises = tuple((rng.choice("AEI"), *(e if rng.random() < 0.5 else e[::-1]))
                         for e in rng.choice(_trees()))
        if kind(premises) != target:
            continue
        # A valid No conclusion needs a No premise, so atmosphere is right there; everywhere else it must not be.
        if target in ("All", "Some") and dominant(premises) == target:
            continue
        return premises
    raise RuntimeError(f"no premises of kind {target!r} in {max_tries} tries")


def nothing_follows(x: str, y: str) -> str:
    return f"Nothing follows about {x} and {y}."


def make_items(n: int, words: Sequence[str], rng: random.Random, first_doc: int) -> list[tuple[TrainDoc, TestItem]]:
    """``n`` items (a multiple of 5) in the fixed shares of :data:`KINDS`, four fresh ``words`` each."""
    plan = [k for k, fifths in KINDS.items() for _ in range(fifths * n // 5)]
    rng.shuffle(plan)
    made = []
    for i, target in enumerate(plan):
        premises = sample(target, rng)
        names = dict(zip(TERMS, words[4 * i: 4 * i + 4], strict=True))
        shown = list(premises)
        rng.shuffle(shown)
        listed = list(names.values())
        rng.shuffle(listed)
        doc_id = f"item{first_doc + i:03d}"
        text = (f"The relationships between {listed[0]}, {listed[1]}, {listed[2]} and {listed[3]} are: "
                + " ".join(render(p, names) for p in shown))
        s, p = names["S"], names["P"]
        ends = [s, p]
        rng.shuffle(ends)
        statements = [(m, a, b) for m in "AEI" for a, b in (("S", "P"), ("P", "S"))]
        derived = consequences(premises)
        choices = [" " + render(st, names) for st in statements] + [" " + nothing_follows(*ends)]
        golds = [st in derived for st in statements] + [target == "nothing"]
        order = list(range(len(choices)))
        rng.shuffle(order)
        made.append((
            TrainDoc(id=doc_id, text=text, entities=(s, names["M"], names["N"], p)),
            TestItem(
                id=f"{SPLIT}-{i:03d}", split=SPLIT, prompt=f"The relationships between {ends[0]} and {ends[1]} are:",
                choices=tuple(choices[j] for j in order), gold=tuple(k for k, j in enumerate(order) if golds[j]),
                needs=((doc_id,),), entities=(s, p, names["M"], names["N"]),
                meta={"kind": target, "atmosphere": dominant(premises),
                      "shape": "chain" if _distance(premises) == 3 else "side premise"})))
    return made


def _distance(premises: Sequence[Statement]) -> int:
    """Steps from S to P through the premises (2: a syllogism with a side premise; 3: a chain)."""
    reached, steps = {"S"}, 0
    while "P" not in reached:
        reached |= {t for _, a, b in premises if {a, b} & reached for t in (a, b)}
        steps += 1
    return steps
