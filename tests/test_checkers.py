"""The checkers pass over every full default dataset and catch broken references."""

from __future__ import annotations

import dataclasses

import pytest

from icl_generalization.data.checkers import check_answer_frequency, check_dataset, frequency_baseline
from icl_generalization.data.families import FAMILIES, build
from icl_generalization.data.families.semantic.checker import closure


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_checkers_pass_on_default_datasets(family: str) -> None:
    assert check_dataset(build(family)) == []


def test_unknown_needed_document_is_reported() -> None:
    ds = build("syllogism")
    item = dataclasses.replace(ds.test[0], needs=(("no-such-doc",),))
    assert check_dataset(dataclasses.replace(ds, test=(item, *ds.test[1:]))) == [
        f"{item.id}: needs unknown document no-such-doc"]


def test_an_answer_that_gives_itself_away_by_frequency_is_reported() -> None:
    ds = build("semantic")
    items = ds.items("rephrase")
    # Plant the bias: the first item's gold word becomes the answer of every item of the split.
    word = items[0].choices[items[0].gold[0]]
    planted = [dataclasses.replace(t, choices=tuple(word if i in t.gold else c for i, c in enumerate(t.choices)))
               for t in items if word not in [c for i, c in enumerate(t.choices) if i not in t.gold]]
    baseline, chance = frequency_baseline(planted)
    assert baseline > 0.9 and chance == 0.25
    others = tuple(t for t in ds.test if t.split != "rephrase")
    problems = check_answer_frequency(dataclasses.replace(ds, test=(*planted, *others)))
    assert len(problems) == 1 and problems[0].startswith("split rephrase: picking the most frequent option")


def test_closure_chains_is_a_and_inherits_attributes() -> None:
    facts = {("isa", "a", "b"), ("isa", "b", "c"), ("part", "c", "x"), ("ability", "b", "y")}
    derived = closure(facts)
    assert {("isa", "a", "c"), ("part", "a", "x"), ("part", "b", "x"), ("ability", "a", "y")} <= derived
    assert ("ability", "c", "y") not in derived and ("isa", "c", "a") not in derived
