"""The checkers pass over every full default dataset and catch broken references and moved golds."""

from __future__ import annotations

import ast
import dataclasses

import pytest
from conftest import BERGLUND

from icl_generalization.core.errors import DataError
from icl_generalization.core.paths import PACKAGE_ROOT
from icl_generalization.data.checkers import check_answer_frequency, check_dataset, frequency_baseline
from icl_generalization.data.families import FAMILIES, build
from icl_generalization.data.families.reversal_curse.berglund import import_berglund
from icl_generalization.data.families.reversal_curse.checker import check_reversal_curse
from icl_generalization.data.families.semantic.checker import closure
from icl_generalization.data.records import TestItem


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


def _move_gold(item: TestItem) -> TestItem:
    """The item with its gold moved to the first option that was not gold."""
    wrong = next(i for i in range(len(item.choices)) if i not in item.gold)
    return dataclasses.replace(item, gold=(wrong,))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_moved_gold_is_caught_in_every_split(family: str) -> None:
    ds = build(family)
    tampered = {ds.items(split)[0].id for split in ds.splits}
    test = tuple(_move_gold(t) if t.id in tampered else t for t in ds.test)
    problems = check_dataset(dataclasses.replace(ds, test=test))
    assert {p.split(":")[0] for p in problems} == tampered


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_dataset_whose_golds_were_all_moved_fails_on_every_item(family: str) -> None:
    ds = build(family, seed=7)
    problems = check_dataset(dataclasses.replace(ds, test=tuple(_move_gold(t) for t in ds.test)))
    assert {t.id for t in ds.test} <= {p.split(":")[0] for p in problems}


def test_a_dataset_without_test_items_or_checker_is_refused() -> None:
    ds = build("syllogism", overrides={"n_items": 3})
    with pytest.raises(DataError, match="has no test split"):
        check_dataset(dataclasses.replace(ds, test=()))
    with pytest.raises(DataError, match="no gold checker"):
        check_dataset(dataclasses.replace(ds, family="unknown"))


def test_a_missing_or_foreign_split_is_reported() -> None:
    ds = build("reversal_curse", overrides={"people_per_set": 4, "train_templates": 2, "test_templates": 2})
    test = tuple(dataclasses.replace(t, split="other") if t.split == "d2p" else t for t in ds.test)
    problems = check_dataset(dataclasses.replace(ds, test=test))
    assert problems[:2] == ["split other: not a split of reversal_curse (p2d_reverse, p2d, d2p, d2p_reverse)",
                            "split d2p: missing (the dataset has no items of it)"]


@pytest.mark.skipif(not BERGLUND.is_dir(), reason=f"Berglund data not present at {BERGLUND}")
def test_the_reversal_checker_reads_berglunds_paraphrases() -> None:
    ds = import_berglund(BERGLUND)
    assert check_reversal_curse(ds) == []
    moved = tuple(_move_gold(t) if t.split == "p2d_reverse" else t for t in ds.test)
    assert len(check_reversal_curse(dataclasses.replace(ds, test=moved))) >= len(ds.items("p2d_reverse"))


def test_checkers_share_no_code_with_their_generators() -> None:
    for family in FAMILIES:
        source = (PACKAGE_ROOT / "data" / "families" / family / "checker.py").read_text(encoding="utf-8")
        imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
        assert not {m for m in imported if m and m.startswith("icl_generalization.data.families")}, family
