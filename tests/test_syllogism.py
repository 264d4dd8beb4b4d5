"""Syllogisms: the generator's rules and the checker's Venn diagrams agree; items are balanced and varied."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

from icl_generalization.data.families import build
from icl_generalization.data.families.syllogism.checker import check_syllogism, valid_conclusions
from icl_generalization.data.families.syllogism.generator import NAMES, QUANTIFIERS, follows, options, valid_forms


def _word(statement: tuple[str, str, str]) -> tuple[str, str, str]:
    return (QUANTIFIERS[statement[0]], statement[1], statement[2])


def test_rules_of_distribution_agree_with_venn_model_checking_on_every_premise_pair() -> None:
    pairs = [(m, a, b) for m in QUANTIFIERS for a, b in itertools.permutations("SMP", 2)]
    checked = 0
    for p1, p2 in itertools.product(pairs, repeat=2):
        if {p1[1], p1[2]} == {p2[1], p2[2]} or "M" not in p1[1:] or "M" not in p2[1:]:
            continue  # a syllogism has one premise per end term, each with the middle term
        venn = valid_conclusions([_word(p1), _word(p2)], [_word(o) for o in options()])
        assert [follows((p1, p2), o) for o in options()] == venn, (p1, p2)
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
    per_form = Counter(item.meta["form"] for item in ds.test)
    assert len(per_form) == 9 and max(per_form.values()) - min(per_form.values()) <= 1
    assert all(len(item.choices) == 6 for item in ds.test)
    assert not any("are not" in doc.text for doc in ds.train)
    # Premise order varies: the major premise (the one naming P, entities[2]) comes first in some items only.
    firsts = Counter(doc.entities[2] in doc.text.split(": ", 1)[1].split(".")[0].split() for doc in ds.train)
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
