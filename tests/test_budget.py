"""Matched token budgets: exact totals, repetition of a short corpus, a cut last line, determinism; and the
finetuning record of what a corpus added."""

from __future__ import annotations

from typing import Any

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.training.budget import TokenizerText, match_budget
from icl_generalization.training.finetune import augmentation_record


class Words:
    """A TokenText where a token is a word."""

    def count(self, text: str) -> int:
        return len(text.split())

    def head(self, text: str, tokens: int) -> str:
        return " ".join(text.split()[:tokens])


def _corpus(*lengths: int) -> list[dict[str, Any]]:
    return [{"source_id": f"d{i}", "text": " ".join(["w"] * n), "mode": "repeat"} for i, n in enumerate(lengths)]


def test_a_large_corpus_is_sampled_and_cut_to_the_budget() -> None:
    rows = _corpus(*range(3, 23))  # 250 tokens
    matched = match_budget(rows, 100, Words(), seed=0)
    assert matched.tokens_added == 100 == sum(len(r["text"].split()) for r in matched.rows)
    assert matched.passes == 1 and matched.source_tokens == 250
    # Every line but the last is whole; the last is cut, and says from how many tokens.
    whole = {r["source_id"]: r["text"] for r in rows}
    assert all(r["text"] == whole[r["source_id"]] for r in matched.rows[:-1])
    if matched.cut_line:
        assert matched.rows[-1]["cut_from_tokens"] > matched.rows[-1]["tokens"]
    again = match_budget(rows, 100, Words(), seed=0)
    assert again.rows == matched.rows  # deterministic
    other = match_budget(rows, 100, Words(), seed=1)
    assert [r["source_id"] for r in other.rows] != [r["source_id"] for r in matched.rows]


def test_a_small_corpus_is_repeated_up_to_the_budget() -> None:
    matched = match_budget(_corpus(4, 6), 25, Words(), seed=0)
    assert matched.tokens_added == 25 and matched.passes == 3
    passes = [r["pass"] for r in matched.rows]
    assert passes[:4] == [1, 1, 2, 2] and set(passes[4:]) == {3}  # each pass in the same seeded order
    assert [r["source_id"] for r in matched.rows[:2]] == [r["source_id"] for r in matched.rows[2:4]]
    assert matched.cut_line


def test_budget_refusals() -> None:
    with pytest.raises(UserError, match="no text"):
        match_budget([{"text": "   "}], 10, Words(), seed=0)
    with pytest.raises(UserError, match="token_budget"):
        match_budget(_corpus(3), 0, Words(), seed=0)


def test_a_real_tokenizer_is_counted_again_after_the_cut(default_model_path: Any) -> None:
    from transformers import AutoTokenizer

    tokens = TokenizerText(AutoTokenizer.from_pretrained(str(default_model_path)))
    rows = [{"text": "the quick brown fox jumps over the lazy dog"}, {"text": "a second line of plain words"}]
    matched = match_budget(rows, 7, tokens, seed=0)
    assert matched.tokens_added == sum(tokens.count(r["text"]) for r in matched.rows)
    assert abs(matched.tokens_added - 7) <= 1  # re-tokenizing a cut can merge or split a token


class CharTokenizer:
    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


def test_finetuning_records_what_the_corpus_added() -> None:
    corpus = [{"text": "abc", "mode": "reverse_word", "token_budget": 5}, {"text": "de", "mode": "reverse_word",
                                                                         "token_budget": 5}]
    assert augmentation_record(corpus, CharTokenizer()) == {"augmented_tokens": 5,
                                                           "augmentation_strategy": "reverse_word",
                                                           "token_budget": 5}
    assert augmentation_record([], CharTokenizer()) == {"augmented_tokens": 0, "augmentation_strategy": None,
                                                       "token_budget": None}
    # A corpus of the user's own, without strategy or budget, still counts its tokens.
    assert augmentation_record([{"text": "xyz"}], CharTokenizer())["augmented_tokens"] == 3
