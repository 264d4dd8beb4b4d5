"""Syllogisms: the generator's rules and the checker's Venn diagrams agree; items are balanced and varied; the
balanced split defeats the atmosphere heuristic."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import pytest

from icl_generalization.data.families import build
from icl_generalization.data.families.syllogism import balanced
from icl_generalization.data.families.syllogism.checker import check_syllogism, valid_conclusions
from icl_generalization.data.families.syllogism.forms import NAMES, QUANTIFIERS, follows, options, valid_forms
from icl_generalization.data.shortcut_baselines import Corpus, Evidence, atmosphere, choose, credit

Triple = tuple[str, str, str]


def _word(statement: Triple) -> Triple:
    return ({**QUANTIFIERS, "O": "Some-not"}[statement[0]], statement[1], statement[2])


def _brute_force(premises: list[Triple], conclusions: list[Triple]) -> list[bool]:
    """The definition itself: true in every one of the 2^8 models (sets of inhabited regions) of three terms."""
    terms = sorted({t for s in (*premises, *conclusions) for t in s[1:]})
    regions = [dict(zip(terms, bits, strict=True)) for bits in itertools.product((False, True), repeat=len(terms))]

    def holds(statement: Triple, model: list[dict[str, bool]]) -> bool:
        q, a, b = statement
        if q == "All":
            return not any(r[a] and not r[b] for r in model)
        if q == "No":
            return not any(r[a] and r[b] for r in model)
        return any(r[a] and r[b] for r in model)

    valid = [True] * len(conclusions)
    for inhabited in itertools.product((False, True), repeat=len(regions)):
        model = [r for r, on in zip(regions, inhabited, strict=True) if on]
        if all(holds(p, model) for p in premises):
            valid = [v and holds(c, model) for v, c in zip(valid, conclusions, strict=True)]
    return valid


def test_rules_of_distribution_agree_with_venn_model_checking_on_every_premise_pair() -> None:
    pairs = [(m, a, b) for m in QUANTIFIERS for a, b in itertools.permutations("SMP", 2)]
    checked = 0
    for p1, p2 in itertools.product(pairs, repeat=2):
        if {p1[1], p1[2]} == {p2[1], p2[2]} or "M" not in p1[1:] or "M" not in p2[1:]:
            continue  # a syllogism has one premise per end term, each with the middle term
        venn = valid_conclusions([_word(p1), _word(p2)], [_word(o) for o in options()])
        assert [follows((p1, p2), o) for o in options()] == venn, (p1, p2)
        assert _brute_force([_word(p1), _word(p2)], [_word(o) for o in options()]) == venn, (p1, p2)
        checked += 1
    assert checked == 72  # 6 statements about M-P x 6 about M-S, in both orders


def test_the_valid_forms_are_the_nine_classical_ones_without_existential_import() -> None:
    assert {f.name for f in valid_forms()} == set(NAMES.values())


def test_existential_import_is_explicit() -> None:
    barbara = [("All", "m", "p"), ("All", "s", "m")]
    some = [("Some", "s", "p")]
    assert valid_conclusions(barbara, some) == [False]  # modern reading (the dataset's)
    assert valid_conclusions(barbara, some, existential_import=True) == [True]  # Aristotelian reading


def test_items_are_balanced_over_forms_and_vary_premise_order() -> None:
    ds = build("syllogism")
    per_form = Counter(item.meta["form"] for item in ds.items("conclusion"))
    assert len(per_form) == 9 and max(per_form.values()) - min(per_form.values()) <= 1
    assert all(len(item.choices) == 6 for item in ds.items("conclusion"))
    assert not any("are not" in doc.text for doc in ds.train)
    # Premise order varies: the major premise (the one naming P, entities[2]) comes first in some items only.
    study = [doc for doc in ds.train if len(doc.entities) == 3]
    firsts = Counter(doc.entities[2] in doc.text.split(": ", 1)[1].split(".")[0].split() for doc in study)
    assert firsts[True] > 5 and firsts[False] > 5
    assert ds.train[0].text.startswith("The relationships between ")
    assert ds.test[0].prompt.startswith("The relationships between ") and ds.test[0].prompt.endswith(" are:")


def test_checker_catches_a_planted_wrong_gold() -> None:
    ds = build("syllogism")
    assert check_syllogism(ds) == []
    item = ds.test[0]
    wrong = next(i for i in range(6) if i not in item.gold)
    bad = dataclasses.replace(ds, test=(dataclasses.replace(item, gold=(wrong,)), *ds.test[1:]))
    assert any(item.id in p for p in check_syllogism(bad))


def _trees() -> list[tuple[tuple[str, str], ...]]:
    edges = list(itertools.combinations("SPMN", 2))
    return [t for t in itertools.combinations(edges, 3) if _connected(t)]


def _connected(tree: tuple[tuple[str, str], ...]) -> bool:
    reached = {"S"}
    for _ in range(3):
        reached |= {x for e in tree if reached & set(e) for x in e}
    return len(reached) == 4


def test_forward_chaining_agrees_with_the_countermodel_search_on_every_tree_of_three_premises() -> None:
    trees = _trees()
    assert len(trees) == 16  # Cayley: 4^(4-2) labelled trees on four terms
    asked = [(m, a, b) for m in "AEIO" for a, b in itertools.permutations("SPMN", 2)]
    checked = 0
    for tree in trees:
        for moods in itertools.product("AEI", repeat=3):
            for flips in itertools.product((False, True), repeat=3):
                premises = [(m, *(e[::-1] if f else e)) for m, e, f in zip(moods, tree, flips, strict=True)]
                derived = balanced.consequences(premises)
                venn = valid_conclusions([_word(p) for p in premises], [_word(s) for s in asked])
                assert [s in derived for s in asked] == venn, premises
                checked += 1
    assert checked == 16 * 27 * 8


def test_nothing_follows_is_decided_by_the_checker() -> None:
    undistributed = [("All", "s", "m"), ("All", "p", "m")]
    assert valid_conclusions(undistributed, [("Nothing", "s", "p")]) == [True]
    # Ferio: only "Some s are not p" follows, which is no option, but it is something: "nothing" is false.
    ferio = [("No", "m", "p"), ("Some", "s", "m")]
    assert valid_conclusions(ferio, [("Nothing", "s", "p"), ("No", "s", "p"), ("Some", "s", "p")]) == [False] * 3
    # Without existential import Darapti gives nothing; with it, Some s are p.
    darapti = [("All", "m", "s"), ("All", "m", "p")]
    assert valid_conclusions(darapti, [("Nothing", "s", "p")]) == [True]
    assert valid_conclusions(darapti, [("Nothing", "s", "p")], existential_import=True) == [False]


def test_balanced_split_shares_and_atmosphere() -> None:
    ds = build("syllogism")
    items = ds.items("balanced")
    assert Counter(item.meta["kind"] for item in items) == {"All": 40, "No": 20, "Some": 20, "nothing": 20}
    assert all(len(item.choices) == 7 and sum("Nothing follows about" in c for c in item.choices) == 1
               for item in items)
    docs = ds.doc_index()
    assert all(len(docs[item.needs[0][0]].text.split(". ")) == 3 for item in items)  # three premises each
    assert {item.meta["shape"] for item in items} == {"chain", "side premise"}
    # The audit's atmosphere baseline reads these premises (it finds the dominant quantifier, and is right on
    # every No item), yet scores chance over the split: the new option form does not blind it.
    training = Corpus([doc.text for doc in ds.train], [doc.id for doc in ds.train])
    ev = Evidence(training, Corpus([]))
    scores = {item.id: credit(item, choose(atmosphere(item, ev))) for item in items}
    assert all(scores[item.id] == 1.0 for item in items if item.meta["kind"] == "No")
    assert all(scores[item.id] == 0.0 for item in items if item.meta["kind"] != "No")
    assert sum(scores.values()) / len(items) == pytest.approx(0.2)
    assert sum(len(item.gold) / len(item.choices) for item in items) / len(items) == pytest.approx(0.2)


def test_checker_catches_a_wrong_nothing_follows() -> None:
    ds = build("syllogism", overrides={"n_items": 3, "n_balanced": 5})
    item = next(t for t in ds.items("balanced") if t.meta["kind"] != "nothing")
    nothing = next(i for i, c in enumerate(item.choices) if "Nothing follows" in c)
    bad = dataclasses.replace(ds, test=tuple(dataclasses.replace(t, gold=(nothing,)) if t is item else t
                                             for t in ds.test))
    assert check_syllogism(ds) == [] and any(item.id in p for p in check_syllogism(bad))
