"""The nonsense lexicon: seeded, pronounceable, never English, far apart, distinct after tokenization."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.data.families import build
from icl_generalization.data.lexicon import (
    MAX_LEN,
    MIN_LEN,
    audit,
    dataset_words,
    first_syllable_head,
    is_english,
    make_words,
    within_one_edit,
    word_pool,
)

NONSENSE_FAMILIES = ("simple_reversal", "syllogism", "semantic", "process")


def test_same_seed_same_words_and_different_seed_different_words() -> None:
    assert make_words(50, random.Random(7), pool="syllogism") == make_words(50, random.Random(7), pool="syllogism")
    assert make_words(50, random.Random(7), pool="syllogism") != make_words(50, random.Random(8), pool="syllogism")


def test_words_are_short_distinct_and_at_least_two_edits_apart() -> None:
    words = make_words(300, random.Random(1), pool="semantic", max_shared_head=2)
    assert len(set(words)) == 300
    assert all(MIN_LEN <= len(w) <= MAX_LEN and w.isalpha() and w.islower() for w in words)
    assert not any(within_one_edit(a, b) for i, a in enumerate(words) for b in words[i + 1:])


def test_within_one_edit() -> None:
    assert within_one_edit("glon", "glan") and within_one_edit("glon", "glons") and within_one_edit("glon", "lon")
    assert not within_one_edit("glon", "gran") and not within_one_edit("glon", "glonks")


def test_real_words_are_rejected_by_the_word_list() -> None:
    assert is_english("house") and is_english("dax")  # "dax" occurs in real English text
    assert not is_english("femp")


def test_first_syllable_head_limit() -> None:
    words = make_words(150, random.Random(3), pool="syllogism", max_shared_head=1)
    heads = Counter(first_syllable_head(w) for w in words)
    assert max(heads.values()) == 1
    with pytest.raises(UserError, match="max_shared_head"):
        make_words(2000, random.Random(3), pool="syllogism", max_shared_head=1, max_tries=20_000)


@pytest.mark.parametrize("family", NONSENSE_FAMILIES)
def test_no_dataset_word_is_english(family: str) -> None:
    words = dataset_words(build(family))
    assert words and not [w for w in words if is_english(w)]


@pytest.mark.parametrize("family", NONSENSE_FAMILIES)
def test_no_two_words_of_a_dataset_share_token_ids(family: str, default_model_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    report = audit(dataset_words(build(family)), tokenizer)
    assert report.collisions == ()
    assert all(w.ids for w in report.words)


class _FirstLetterTokenizer:
    """A tokenizer that only sees a word's first letter: every word starting alike collides."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(text.strip()[0])]}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [chr(i) for i in ids]


def test_audit_flags_collisions() -> None:
    report = audit(["glon", "gruf", "femp"], _FirstLetterTokenizer())
    assert report.collisions == (("glon", "gruf"),)
    assert "1 collisions" in report.summary()


def test_families_draw_from_disjoint_word_pools() -> None:
    # One checkpoint trained on two families must not meet one word in two roles.
    pools = {name: set(dataset_words(build(name))) for name in NONSENSE_FAMILIES}
    assert all(pools.values())
    for i, a in enumerate(NONSENSE_FAMILIES):
        assert all(not pools[a] & pools[b] for b in NONSENSE_FAMILIES[i + 1:]), a
    assert {word_pool(w) for w in pools["syllogism"]} == {"syllogism"}
    assert {word_pool(w) for w in pools["process"]} == {"process"}
