"""The checkers pass over every full default dataset and catch broken references."""

from __future__ import annotations

import dataclasses

import pytest

from icl_generalization.checkers import check_dataset, closure
from icl_generalization.datasets import FAMILIES, build


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_checkers_pass_on_default_datasets(family: str) -> None:
    assert check_dataset(build(family)) == []


def test_unknown_needed_document_is_reported() -> None:
    ds = build("syllogism")
    item = dataclasses.replace(ds.test[0], needs=(("no-such-doc",),))
    assert check_dataset(dataclasses.replace(ds, test=(item, *ds.test[1:]))) == [
        f"{item.id}: needs unknown document no-such-doc"]


def test_closure_chains_is_a_and_inherits_attributes() -> None:
    facts = {("isa", "a", "b"), ("isa", "b", "c"), ("part", "c", "x"), ("ability", "b", "y")}
    derived = closure(facts)
    assert {("isa", "a", "c"), ("part", "a", "x"), ("part", "b", "x"), ("ability", "a", "y")} <= derived
    assert ("ability", "c", "y") not in derived and ("isa", "c", "a") not in derived
