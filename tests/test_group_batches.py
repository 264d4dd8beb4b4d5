"""Groups of different contexts scored side by side in one forward give what each gives alone, and what plain
forwards give; waves are planned within the padding and memory bounds; the probe proves the mode per model."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from architecture_matrix import VOCAB, WINDOW, build, independent_wave_error
from forward_counter import count_forwards
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from icl_generalization.scoring import cached_hflm, group_batches, probe
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM
from icl_generalization.scoring.group_batches import GroupWork, plan_waves, score_wave
from icl_generalization.scoring.prefix_cache import (
    ModelDims,
    PrefixCacheConfig,
    compute_prefix,
    forward_bytes,
    score_continuations,
)
from icl_generalization.scoring.probe import check_cached_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _works(lengths: list[int], conts: list[tuple[int, ...]], seed: int = 3) -> list[GroupWork]:
    """One group per prefix length; continuations of the given token counts, a question's choices sharing a start."""
    rng = random.Random(seed)
    works = []
    for length, counts in zip(lengths, conts, strict=True):
        prefix = tuple(rng.randrange(VOCAB) for _ in range(length))
        question = tuple(rng.randrange(VOCAB) for _ in range(6))
        continuations = tuple((*question[:n - 1], rng.randrange(VOCAB)) if n > 1 else (rng.randrange(VOCAB),)
                              for n in counts)
        # Score every token of some continuations and only the last of the others, as choices after a question.
        n_scored = tuple(len(c) if k % 2 else 1 for k, c in enumerate(continuations))
        works.append(GroupWork(prefix, continuations, n_scored))
    return works


@pytest.mark.parametrize(("architecture", "window", "impl"), [
    ("llama", None, None), ("llama", None, "eager"), ("mistral", WINDOW, None), ("gemma2", WINDOW, None),
    ("gemma3_text", WINDOW, None), ("qwen2", WINDOW, None), ("gpt2", None, None),
])
def test_a_wave_scores_each_group_as_it_scores_alone(architecture: str, window: int | None, impl: str | None) -> None:
    model = build(architecture, window)  # SDPA where the architecture takes it (Gemma 2's soft-capping: eager)
    if impl is not None:
        model.config._attn_implementation = impl
    # Prefixes of different lengths (rows padded to 333), longer than the 16-token window of windowed models;
    # continuations of one token (nothing to pack), several packed, choices sharing their question.
    works = _works([333, 290, 310], [(1, 7, 7, 3), (1, 1, 4), (5, 6, 2, 2, 1)])
    config = PrefixCacheConfig(batch_tokens=120)  # 40 prefix tokens per row per chunk: 9 prefill chunks
    waved = score_wave(model, works, config, torch.float32)
    for work, group in zip(works, waved, strict=True):
        alone = score_continuations(model, compute_prefix(model, work.prefix, config), work.continuations,
                                    work.n_scored, config, torch.float32)
        for a, b in zip(alone, group, strict=True):
            torch.testing.assert_close(b.logprobs, a.logprobs, atol=1e-5, rtol=0)
            assert a.greedy == b.greedy
    # And against plain forwards, on other tokens: the independent check the architecture matrix also runs.
    error, same = independent_wave_error(model)
    assert error <= 1e-4 and same


def test_a_wave_of_one_token_continuations_runs_no_packed_forward() -> None:
    model = build("llama", None)
    works = _works([100, 90], [(1, 1), (1,)])
    with count_forwards(model) as seen:
        waved = score_wave(model, works, PrefixCacheConfig(batch_tokens=1024), torch.float32)
    assert seen["calls"] == 1  # one batched prefill chunk; the prefixes' last logits score every continuation
    for work, group in zip(works, waved, strict=True):
        alone = score_continuations(model, compute_prefix(model, work.prefix), work.continuations, work.n_scored)
        for a, b in zip(alone, group, strict=True):
            torch.testing.assert_close(b.logprobs, a.logprobs, atol=1e-5, rtol=0)


def test_waves_join_similar_prefixes_within_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build("llama", None)
    config = PrefixCacheConfig(batch_tokens=1024)
    works = [w.shape for w in _works([300, 290, 280, 100, 95, 300, 20], [(3, 3)] * 7)]
    waves, alone = plan_waves(model, works, 8, config)
    # Longest first; 100 and 95 cannot join the ~300s (padded by over a quarter); 20 is left with no partner.
    assert waves == [[5, 0, 1, 2], [3, 4]] and alone == [6]
    assert plan_waves(model, works, 2, config) == ([[5, 0], [1, 2], [3, 4]], [6])
    assert plan_waves(model, works, 1, config) == ([], list(range(7)))
    # A trie larger than one packed forward keeps its group alone.
    rng = random.Random(0)
    many = tuple(tuple(rng.randrange(VOCAB) for _ in range(6)) for _ in range(20))
    big = [GroupWork(tuple(range(300)), many, (1,) * 20).shape, works[5]]
    assert big[0][1] > 32
    assert plan_waves(model, big, 8, PrefixCacheConfig(batch_tokens=32)) == ([], [0, 1])
    # A budget a byte short of three rows of 300-token cache (padding included) and their packed forward takes
    # two rows only: the cache and the forward count together.
    dims = ModelDims.of(model)
    three = 3 * dims.kv_bytes(dims.layers * 300) + forward_bytes(model, 300, 2, 3)
    assert works[0] == (300, 2)  # two 3-token choices of one question: the question's first 2 tokens, shared
    with monkeypatch.context() as patch:
        patch.setattr(group_batches, "memory_budget", lambda _model, _config: three - 1)
        assert plan_waves(model, works[:3], 8, config) == ([[0, 1]], [2])
        patch.setattr(group_batches, "memory_budget", lambda _model, _config: three)
        assert plan_waves(model, works[:3], 8, config) == ([[0, 1, 2]], [])


def test_a_forward_that_keeps_no_logits_by_position_is_never_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_batches, "keeps_indices", lambda _model: False)
    shapes = [w.shape for w in _works([300, 300], [(3,), (3,)])]
    assert plan_waves(build("llama", None), shapes, 8, PrefixCacheConfig()) == ([], [0, 1])


def test_the_probe_proves_batching_and_refuses_it_when_it_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = check_cached_path(build("llama", None), 512)
    assert verdict.trusted and verdict.packed and verdict.batched and verdict.unbatched_because is None

    def off_by_a_little(*args: Any, **kwargs: Any) -> list[list[torch.Tensor]]:
        return [[rows + 1e-3 for rows in group] for group in group_batches.wave_logprobs(*args, **kwargs)]

    monkeypatch.setattr(probe, "wave_logprobs", off_by_a_little)
    verdict = check_cached_path(build("llama", None), 512)
    # Still trusted one group at a time; never batched.
    assert verdict.trusted and verdict.packed and not verdict.batched
    assert verdict.unbatched_because is not None and "differs by up to 0.001" in verdict.unbatched_because

    def failing(*_args: Any, **_kwargs: Any) -> list[list[torch.Tensor]]:
        raise RuntimeError("no batched masks here")

    monkeypatch.setattr(probe, "wave_logprobs", failing)
    verdict = check_cached_path(build("llama", None), 512)
    assert verdict.trusted and not verdict.batched
    assert verdict.unbatched_because == "batching groups of different contexts failed on a probe (RuntimeError: " \
                                        "no batched masks here)"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def _requests() -> list[Instance]:
    """Five ICL-like shards of different lengths, each with two questions of three choices."""
    contexts = [" ".join(f"fact {i} says item{i} is near place{i % 7}." for i in range(k, k + n))
                for k, n in ((0, 12), (50, 11), (100, 12), (150, 10), (200, 6))]
    return [Instance("loglikelihood", {}, (f"{c} Question {q}: where is item{q}?", f" place{a}"), 0)
            for c in contexts for q in range(2) for a in range(3)]


def test_the_cached_model_class_batches_contexts_and_scores_as_stock(tiny_model_path: Path, tokenizer: Any,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    requests = _requests()
    expected = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4).loglikelihood(requests, disable_tqdm=True)
    one = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32)
    assert one.prefix_settings.groups_per_forward(torch.device("cpu")) == 1  # the CPU default
    assert one.prefix_settings.groups_per_forward(torch.device("cuda")) == cached_hflm.GPU_BATCH_GROUPS
    single = one.loglikelihood(requests, disable_tqdm=True)
    assert one.prefix_stats["waves"] == 0
    with caplog.at_level(logging.INFO, logger=cached_hflm.__name__):
        batched = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32,
                                   prefix_batch_groups=4)
        got = batched.loglikelihood(requests, disable_tqdm=True)
    stats = batched.prefix_stats
    assert stats["groups"] == 5 and stats["waves"] >= 1 and stats["wave_groups"] >= 2
    # The same tokens counted as one group at a time, plus the padding the waves ran.
    assert stats["packed_tokens"] == one.prefix_stats["packed_tokens"] and stats["wave_padding_tokens"] > 0
    for (ll, greedy), (ll1, greedy1), (ll0, greedy0) in zip(got, single, expected, strict=True):
        assert abs(ll - ll0) <= 1e-4 and abs(ll - ll1) <= 1e-4
        assert greedy == greedy0 == greedy1
    assert not [r for r in caplog.records if r.name == cached_hflm.__name__ and r.levelno >= logging.WARNING]


def test_prefix_batch_groups_is_validated_before_the_model_loads() -> None:
    from icl_generalization.core.errors import UserError

    with pytest.raises(UserError, match="prefix_batch_groups"):
        PrefixCachedHFLM(pretrained="never-loaded", prefix_batch_groups="0")


def test_a_wave_out_of_memory_scores_its_groups_alone(tiny_model_path: Path, tokenizer: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    requests = _requests()
    expected = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4).loglikelihood(requests, disable_tqdm=True)

    def out_of_memory(*_args: Any, **_kwargs: Any) -> list[list[Any]]:
        raise torch.OutOfMemoryError("a wave too big")

    monkeypatch.setattr(cached_hflm, "score_wave", out_of_memory)
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=32,
                              prefix_batch_groups=4)
    got = cached.loglikelihood(requests, disable_tqdm=True)
    # No wave ran, every group ran alone on the cached path, and the model is still trusted.
    assert cached.prefix_stats["waves"] == 0 and cached.prefix_stats["groups"] == 5
    assert cached.prefix_cache_verdict() is None
    for (ll, greedy), (ll0, greedy0) in zip(got, expected, strict=True):
        assert abs(ll - ll0) <= 1e-4 and greedy == greedy0
