"""Near ties: the questions a per-token rounding bound could flip are found, and no other question can flip."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from icl_generalization.core.errors import UserError
from icl_generalization.scoring import cached_hflm
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM
from icl_generalization.scoring.near_ties import near_tie_requests


def _question(doc: int, choices: list[tuple[str, int]], context: tuple[int, ...] = (1, 2)) -> list[Any]:
    """One request per choice: (strings, context tokens, choice tokens), with the choice's text and token count,
    and its question's name."""
    return [((("ctx", text), list(context), list(range(tokens))), ("task", doc)) for text, tokens in choices]


def _near(rows: list[Any], scores: list[float], per_token: float) -> list[int]:
    return near_tie_requests([r for r, _ in rows], [q for _, q in rows], scores, per_token)


def test_a_clear_leader_is_left_and_a_close_pair_is_rechecked() -> None:
    clear = _question(0, [(" a", 1), (" b", 1), (" c", 1)])
    close = _question(1, [(" a", 1), (" b", 1)])
    alone = [((("ctx", " z"), [5], [0]), ("task", 2))]  # a lone request is no question
    rows = clear + close + alone
    scores = [-1.0, -2.0, -3.0, -1.0, -1.05, -9.0]
    assert _near(rows, scores, 0.05) == [3, 4]  # 0.05 apart, each may move 0.05
    assert _near(rows, scores, 0.5) == [0, 1, 2, 3, 4]  # 1.0 apart, each may move 0.5
    assert _near(rows, scores, 0.0) == []


def test_questions_that_share_a_prompt_are_judged_apart() -> None:
    # Two items of a closed-book task with the same prompt: B's clear leader must not hide A's near tie.
    rows = _question(0, [(" x", 1), (" y", 1)]) + _question(1, [(" z", 1), (" w", 1)])
    assert _near(rows, [-3.0, -3.01, -0.5, -5.0], 0.05) == [0, 1]
    # Requests from no document (content-free priors) are never a question.
    unnamed = [(request, None) for request, _ in rows]
    assert _near(unnamed, [-3.0, -3.01, -0.5, -5.0], 0.05) == []


def test_the_bound_grows_with_the_scored_tokens() -> None:
    rows = _question(0, [(" one", 1), (" a longer choice", 9)])
    assert _near(rows, [-1.0, -1.4], 0.05) == [0, 1]  # 0.4 <= 0.05 + 9 x 0.05
    assert _near(rows, [-1.0, -1.6], 0.05) == []


def test_a_length_normalised_near_tie_is_rechecked() -> None:
    # Raw scores 2 nats apart; per character, -4/4 = -1.0 against -6/6 = -1.0: tied for acc_norm.
    rows = _question(0, [(" abc", 1), (" abcde", 1)])
    assert _near(rows, [-4.0, -6.0], 0.05) == [0, 1]
    assert _near(rows, [-4.0, -9.0], 0.05) == []


def _argmaxes(scores: list[float], lengths: list[int]) -> tuple[int, int]:
    raw = max(range(len(scores)), key=scores.__getitem__)
    normalised = max(range(len(scores)), key=lambda j: scores[j] / lengths[j])
    return raw, normalised


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-30, 0), st.integers(1, 6), st.integers(1, 20), st.floats(-1, 1)),
                min_size=2, max_size=5),
       st.floats(0.001, 0.2))
def test_a_question_left_alone_cannot_flip_within_the_bound(choices: list[tuple[float, int, int, float]],
                                                             per_token: float) -> None:
    requests = [(("ctx", "x" * length), [7], list(range(tokens))) for _, tokens, length, _ in choices]
    questions = [("task", 0)] * len(choices)
    scores = [score for score, _, _, _ in choices]
    # Each score moved by at most its bound, in any direction: what the other path might have computed.
    moved = [score + shift * per_token * tokens for score, tokens, _, shift in choices]
    lengths = [length for _, _, length, _ in choices]
    if not near_tie_requests(requests, questions, scores, per_token):
        assert _argmaxes(scores, lengths) == _argmaxes(moved, lengths)


def test_prefix_recheck_nats_is_validated_before_the_model_loads() -> None:
    with pytest.raises(UserError, match="prefix_recheck_nats must be a finite number of at least 0, got '-1'"):
        PrefixCachedHFLM(pretrained="never-loaded", prefix_recheck_nats="-1")
    with pytest.raises(UserError, match="prefix_recheck_nats"):
        PrefixCachedHFLM(pretrained="never-loaded", prefix_recheck_nats="nan")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def _requests() -> list[Instance]:
    contexts = [" ".join(f"fact {i} says item{i} is near place{i % 7}." for i in range(k, k + 12)) for k in (0, 50)]
    return [Instance("loglikelihood", {}, (f"{c} Question {q}: where is item{q}?", f" place{a}"), a,
                     metadata=("task", 3 * n + q, 1))
            for n, c in enumerate(contexts) for q in range(3) for a in range(4)]


@pytest.mark.usefixtures("one_torch_thread")
def test_near_ties_in_bf16_are_scored_the_stock_way(tiny_model_path: Path, tokenizer: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.bfloat16).eval()
    requests = _requests()
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4).loglikelihood(requests, disable_tqdm=True)
    # A bound so wide that every question is a near tie: every answer is stock's own number.
    everything = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32,
                                  prefix_recheck_nats=100)
    with caplog.at_level(logging.INFO, logger=cached_hflm.__name__):
        assert everything.loglikelihood(requests, disable_tqdm=True) == stock
    assert everything.prefix_stats["rechecked_requests"] == len(requests)
    assert any("24 of 24 cached requests are near ties in bfloat16" in r.getMessage() for r in caplog.records)
    # Requests from no document name no question: nothing is rechecked, however wide the bound.
    unnamed = [Instance("loglikelihood", {}, r.args, r.idx) for r in requests]
    anonymous = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32,
                                 prefix_recheck_nats=100)
    anonymous.loglikelihood(unnamed, disable_tqdm=True)
    assert anonymous.prefix_stats["rechecked_requests"] == 0
    # Off: the cached numbers, within rounding of stock's, and nothing scored twice.
    off = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32,
                           prefix_recheck_nats=0)
    assert max(abs(a[0] - b[0]) for a, b in zip(off.loglikelihood(requests, disable_tqdm=True), stock,
                                                strict=True)) < 0.5
    assert off.prefix_stats["rechecked_requests"] == 0
    # The bf16 default: each question's answer is stock's.
    default = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32)
    got = default.loglikelihood(requests, disable_tqdm=True)
    assert default.prefix_settings.recheck_per_token(torch.bfloat16) == cached_hflm.RECHECK_NATS[torch.bfloat16]
    assert default.prefix_settings.recheck_per_token(torch.float32) == 0.0
    for q in range(0, len(requests), 4):
        assert max(range(4), key=lambda a, q=q: got[q + a][0]) == max(range(4), key=lambda a, q=q: stock[q + a][0])


@pytest.mark.slow  # the default model in bf16 on CPU, stock and cached: about 2 minutes on 2 busy cores
@pytest.mark.usefixtures("one_torch_thread")
def test_bf16_on_the_default_model_chooses_stocks_answers(default_model_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icl_generalization.scoring.bench import build_requests

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    model = AutoModelForCausalLM.from_pretrained(default_model_path, dtype=torch.bfloat16).eval()
    requests, _ = build_requests("icl_gen_reversal_curse_p2d_reverse_icl", str(default_model_path), 1024, 10)
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4).loglikelihood(requests, disable_tqdm=True)
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    got = cached.loglikelihood(requests, disable_tqdm=True)
    assert cached.prefix_stats["groups"] >= 1  # the cached path ran
    by_question: dict[int, list[int]] = {}
    for k, request in enumerate(requests):
        by_question.setdefault(request.doc_id, []).append(k)
    for members in by_question.values():
        lengths = [len(requests[k].args[1].encode()) for k in members]
        assert len(members) == 4
        assert _argmaxes([got[k][0] for k in members], lengths) == _argmaxes([stock[k][0] for k in members], lengths)
