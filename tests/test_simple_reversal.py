"""Simple reversals: one direction trained, the reversal tested against its contradiction."""

from __future__ import annotations

import dataclasses
from collections import Counter

from icl_generalization.data.families import build
from icl_generalization.data.families.simple_reversal.checker import check_simple_reversal
from icl_generalization.data.families.simple_reversal.generator import FEATURES, LEAD_INS, pair_of


def test_shape() -> None:
    ds = build("simple_reversal")
    assert len(FEATURES) == 28 and len(LEAD_INS) >= 10
    assert Counter(i.meta["feature"] for i in ds.test).keys() == set(FEATURES)
    assert Counter(i.meta["trained_direction"] for i in ds.test) == {"more": 50, "less": 50}
    # Each fact in 10 articles with 10 different lead-ins.
    for item in ds.test:
        (docs,) = item.needs
        texts = [d.text for d in ds.train if d.id in docs]
        assert len(texts) == 10 and len({t.split(item.entities[1])[0] for t in texts}) == 10


def test_test_prompt_has_no_lead_in_and_is_never_a_training_sentence() -> None:
    ds = build("simple_reversal")
    training = " ".join(d.text for d in ds.train)
    for item in ds.test:
        assert item.prompt == f"{item.entities[0]} are"
        for choice in item.choices:
            assert (item.prompt + choice).rstrip(".") not in training
    # the gold answer is not always the same word, nor at the same place, nor at one place for one word
    assert Counter(item.choices[item.gold[0]].split()[0] for item in ds.test) == {"more": 50, "less": 50}
    assert Counter((item.choices[item.gold[0]].split()[0], item.gold[0]) for item in ds.test) == {
        ("more", 0): 25, ("more", 1): 25, ("less", 0): 25, ("less", 1): 25}


def test_checker_catches_a_planted_wrong_gold() -> None:
    ds = build("simple_reversal")
    assert check_simple_reversal(ds) == []
    item = ds.test[3]
    bad = dataclasses.replace(ds, test=(*ds.test[:3], dataclasses.replace(item, gold=(1 - item.gold[0],)),
                                        *ds.test[4:]))
    problems = check_simple_reversal(bad)
    assert any("gold" in p and item.id in p for p in problems)
    assert any("distractor" in p and item.id in p for p in problems)


def test_every_prefix_spans_as_many_pairs_as_it_has_items() -> None:
    # One question per compared pair, so any `--limit` prefix asks about distinct facts.
    items = build("simple_reversal").test
    assert all(len({pair_of(i) for i in items[:k]}) == k for k in range(1, len(items) + 1))
