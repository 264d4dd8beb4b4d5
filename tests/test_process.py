"""Process knowledge: rules over nonsense symbols, combinations held out; gold proved by the checker's own
interpreter, distractors proved wrong, and no model-free cue above chance on the held-out split."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.data.checkers import check_dataset
from icl_generalization.data.families import FAMILIES, build
from icl_generalization.data.families.process.checker import check_process
from icl_generalization.data.families.process.generator import needed_documents
from icl_generalization.data.records import Dataset, TestItem, TrainDoc
from icl_generalization.data.shortcuts import audit, closed_book_views, failures

SMOKE = FAMILIES["process"].preset_sizes["smoke"]


def _replace(ds: Dataset, item: TestItem) -> Dataset:
    return dataclasses.replace(ds, test=tuple(item if t.id == item.id else t for t in ds.test))


def _result(item: TestItem) -> str:
    return item.choices[item.gold[0]]


def test_shape_and_balance() -> None:
    ds = build("process")
    held = ds.items("held_out")
    assert (len(ds.train), len(ds.items("rule")), len(held)) == (328, 40, 80)
    # Every gold position and every rule shape in equal shares: neither is a cue.
    assert set(Counter(t.gold[0] for t in held).values()) == {10}
    assert set(Counter(t.gold[0] for t in ds.items("rule")).values()) == {10}
    assert set(Counter(t.meta["shape"].replace(t.meta["shape"].split()[1], "J") for t in held).values()) == {20}
    for item in held:
        words = [c.strip(" .").split() for c in item.choices]
        # Same length, same joiner, one question atom in each option, and no option repeated anywhere in the split.
        assert len({len(c) for c in item.choices}) == 1 and len({w[1] for w in words}) == 1
        asked = set(item.prompt.split()[2:5:2])
        assert all(len(set(w) & asked) == 1 for w in words)
    options = [c for t in held for c in t.choices]
    assert len(options) == len(set(options))


def test_held_out_combinations_are_never_shown_and_test_wording_is_new() -> None:
    ds = build("process")
    training = "\n".join(d.text for d in ds.train)
    assert "Under " not in training and "becomes" not in training
    expression = re.compile(r" of ([a-z]+) ([a-z]+) ([a-z]+) (is|gives) ")
    expressions = [m.groups() for d in ds.train if (m := expression.search(d.text))]
    assert len(expressions) == 240
    for item in ds.items("held_out"):
        op, derived = item.meta["operator"], item.meta["derived"]
        # The held-out atom never meets its operator in a worked example, in either argument.
        assert not [e for e in expressions if e[1] == op and derived in (e[0], e[2])]
        left, _, right = item.prompt.split()[2:5]
        assert not [e for e in expressions if {e[0], e[2]} == {left, right}]
        assert all(c.strip(" .") not in training for c in item.choices)


def test_checker_passes_and_catches_a_corrupted_gold_and_a_corrupted_distractor() -> None:
    ds = build("process")
    assert check_process(ds) == []
    for split in ("rule", "held_out"):
        item = ds.items(split)[0]
        wrong = (item.gold[0] + 1) % len(item.choices)
        problems = check_process(_replace(ds, dataclasses.replace(item, gold=(wrong,))))
        assert any(p.startswith(f"{item.id}: gold") for p in problems)
        assert any(p.startswith(f"{item.id}: distractor") for p in problems)
        # A distractor rewritten into the result (and the gold's text into a wrong one): the distractor is caught.
        choices = list(item.choices)
        choices[wrong], choices[item.gold[0]] = _result(item), " " + " ".join(["zzzzz"] * len(choices[wrong].split()))
        problems = check_process(_replace(ds, dataclasses.replace(item, choices=tuple(choices))))
        assert f"{item.id}: distractor {_result(item)!r} is the result" in problems


def test_checker_catches_a_shown_combination_and_an_option_seen_in_training() -> None:
    ds = build("process")
    item = ds.items("held_out")[0]
    left, op, right = item.prompt.split()[2:5]
    # A worked example of the item's own expression: the combination is no longer held out.
    shown = TrainDoc(id="planted", text=f"Worked example: the {item.prompt.split()[1].rstrip(',')} of {left} {op} "
                                        f"{right} is {_result(item).strip()}")
    problems = check_process(dataclasses.replace(ds, train=(*ds.train, shown)))
    assert f"{item.id}: a worked example already derives {item.meta['derived']} under {op}" in problems
    assert any(p.startswith(f"{item.id}: option") and "occurs in training" in p for p in problems)


def test_checker_catches_a_worked_example_that_contradicts_the_rules() -> None:
    ds = build("process")
    doc = next(d for d in ds.train if d.id.startswith("ex"))
    words = doc.text.rstrip(".").split()
    bad = dataclasses.replace(doc, text=" ".join([*words[:-1], words[-3]]) + ".")
    problems = check_process(dataclasses.replace(ds, train=tuple(bad if d.id == doc.id else d for d in ds.train)))
    assert any(p.startswith(f"{doc.id}: worked example gives") for p in problems)


@pytest.mark.parametrize(("seed", "sizes"), [(1234, {}), (7, {}), (1234, SMOKE), (3, SMOKE)])
def test_no_model_free_baseline_beats_chance(seed: int, sizes: dict[str, object]) -> None:
    ds = build("process", seed=seed, overrides=sizes)
    assert check_dataset(ds) == []
    findings = audit(ds, closed_book_views(ds))
    assert failures(findings) == []
    held = [f for f in findings if f.split == "held_out"]
    assert {f.n_clusters for f in held} == {len(ds.items("held_out")) // ds.config["items_per_combination"]}


def test_clusters_are_the_held_out_combinations() -> None:
    ds = build("process")
    clusters = Counter(needed_documents(t) for t in ds.items("held_out"))
    assert set(clusters.values()) == {2} and len(clusters) == 40
    # interleaved: the first 40 held-out items test 40 different combinations
    assert len({needed_documents(t) for t in ds.items("held_out")[:40]}) == 40


def test_a_config_too_small_for_fresh_partners_is_a_user_error() -> None:
    with pytest.raises(UserError, match="n_atoms"):
        build("process", overrides={"n_atoms": 14})
    with pytest.raises(UserError, match="fresh partner"):
        build("process", overrides={"n_atoms": 16, "items_per_combination": 3, "examples_per_combination": 4})
