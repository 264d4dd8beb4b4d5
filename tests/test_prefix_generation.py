"""Batched generation after a cached prefix: equal to one prompt at a time, and seeded per suffix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from scipy.stats import chisquare
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, PreTrainedModel

from icl_generalization.core.errors import UserError
from icl_generalization.scoring.prefix_cache import PrefixCacheConfig, compute_prefix, generate_from_prefix
from icl_generalization.scoring.prefix_generation import (
    generate_many_from_prefix,
    generation_bytes,
    plan_generation,
)
from icl_generalization.scoring.seeded_sampling import Decoding
from icl_generalization.training.backends import HFBackend, Sampling

VOCAB = 300
SIZES = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}


def _llama(impl: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(**SIZES)
    config._attn_implementation = impl
    return LlamaForCausalLM(config).eval()


def _whole(model: PreTrainedModel, prompt: list[int], **kwargs: object) -> list[int]:
    """Stock greedy generation on the whole prompt, no cache handed in: the reference."""
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), do_sample=False, pad_token_id=0, **kwargs)
    return list(out[0, len(prompt):].tolist())


def _ids(rng: random.Random, lengths: tuple[int, ...]) -> list[list[int]]:
    return [[rng.randrange(3, VOCAB) for _ in range(n)] for n in lengths]


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_batched_greedy_equals_each_prompt_alone_and_pads_only_after_eos(impl: str) -> None:
    model = _llama(impl)
    rng = random.Random(1)
    prefix_ids = [rng.randrange(3, VOCAB) for _ in range(50)]
    suffixes = _ids(rng, (1, 5, 3, 8, 2, 5))
    prefix = compute_prefix(model, prefix_ids, PrefixCacheConfig(batch_tokens=16))
    # A stop token that suffix 0 reaches at its third step, so one row stops early while the others run on.
    eos = _whole(model, prefix_ids + suffixes[0], max_new_tokens=8, eos_token_id=None)[2]
    got = generate_many_from_prefix(model, prefix, suffixes, [0] * len(suffixes), max_new_tokens=8,
                                    eos_token_id=eos, pad_token_id=0)
    stopped = 0
    for suffix, rows in zip(suffixes, got, strict=True):
        expected = _whole(model, prefix_ids + suffix, max_new_tokens=8, eos_token_id=eos)
        # The previous path: one generate call per suffix after the same cache.
        one = generate_from_prefix(model, prefix, suffix, max_new_tokens=8, do_sample=False, eos_token_id=eos,
                                   pad_token_id=0)[0].tolist()
        row = rows[0].tolist()
        assert rows.shape[0] == 1 and row[:len(expected)] == expected == one
        assert all(t == 0 for t in row[len(expected):])  # the rest of a stopped row is the pad, nothing else
        stopped += len(expected) < 8
    assert stopped >= 1


def test_a_suffixs_samples_do_not_depend_on_what_shares_its_call() -> None:
    model = _llama()
    rng = random.Random(2)
    prefix = compute_prefix(model, [rng.randrange(3, VOCAB) for _ in range(40)])
    suffixes = _ids(rng, (4, 1, 6, 3, 2))
    seeds = [11, 12, 13, 14, 15]
    decoding = Decoding(temperature=1.0, top_p=0.9)

    def run(indices: list[int], **kwargs: object) -> list[list[list[int]]]:
        rows = generate_many_from_prefix(model, prefix, [suffixes[i] for i in indices], [seeds[i] for i in indices],
                                         2, decoding=decoding, max_new_tokens=6, eos_token_id=None, pad_token_id=0,
                                         **kwargs)
        return [r.tolist() for r in rows]

    together = run([0, 1, 2, 3, 4])
    assert run([2])[0] == together[2]
    assert run([4, 2, 0])[1] == together[2]
    assert run([0, 1, 2, 3, 4], max_batch=2) == together
    assert run([0, 1, 2, 3, 4], config=PrefixCacheConfig(memory_mb=1)) == together
    # A seed is a stream of its own: another seed samples otherwise, and a suffix's two samples differ.
    other = generate_many_from_prefix(model, prefix, [suffixes[2]], [99], 2, decoding=decoding, max_new_tokens=6,
                                      eos_token_id=None, pad_token_id=0)[0].tolist()
    assert other != together[2] and together[2][0] != together[2][1]


def test_first_sampled_token_follows_the_warped_softmax() -> None:
    model = _llama()
    with torch.no_grad():  # sharper logits than a random init gives, so temperature and top-p change something
        model.lm_head.weight.mul_(15.0)
    prefix_ids, suffix = list(range(10, 30)), [5, 6, 7]
    prefix = compute_prefix(model, prefix_ids)
    with torch.no_grad():
        logits = model(torch.tensor([prefix_ids + suffix])).logits[0, -1].float()
    decoding = Decoding(temperature=0.7, top_p=0.9)
    expected = torch.softmax(decoding.warpers()(torch.zeros(1, 1, dtype=torch.long), logits[None].clone())[0], -1)
    draws = 4000
    rows = generate_many_from_prefix(model, prefix, [suffix] * draws, list(range(draws)), decoding=decoding,
                                     max_batch=draws, max_new_tokens=1, pad_token_id=0)
    counts = torch.bincount(torch.cat(rows)[:, 0], minlength=VOCAB).double()
    assert counts[expected == 0].sum() == 0  # nothing outside the nucleus
    assert int((expected > 0).sum()) >= 5  # the test has tokens to tell apart

    def p_value(probabilities: torch.Tensor) -> float:
        # Tokens expected fewer than 5 times are pooled into one cell, as a chi-square test needs.
        big = probabilities * draws >= 5
        observed, wanted = counts[big].tolist(), (probabilities[big] * draws).tolist()
        if float(probabilities[~big].sum()) > 0:
            observed.append(float(counts[~big].sum()))
            wanted.append(float(probabilities[~big].sum()) * draws)
        return float(chisquare(observed, [w * sum(observed) / sum(wanted) for w in wanted]).pvalue)

    assert p_value(expected) > 1e-3
    # The test can fail: the same draws are far from the distribution at another temperature.
    assert p_value(torch.softmax(logits, -1)) < 1e-6


def test_sliding_window_models_batch_only_suffixes_of_one_length() -> None:
    torch.manual_seed(0)
    config = MistralConfig(**SIZES, sliding_window=16)
    config._attn_implementation = "sdpa"
    model = MistralForCausalLM(config).eval()
    rng = random.Random(3)
    prefix_ids = [rng.randrange(3, VOCAB) for _ in range(30)]
    suffixes = _ids(rng, (3, 5, 3, 2, 5))
    # Pads would shift the window by their number, so calls hold one length each.
    calls = plan_generation(model, 30, [len(s) for s in suffixes], 1, 6, PrefixCacheConfig(), 64)
    assert sorted(sorted(c) for c in calls) == [[0, 2], [1, 4], [3]]
    got = generate_many_from_prefix(model, compute_prefix(model, prefix_ids), suffixes, [0] * 5, max_new_tokens=6,
                                    eos_token_id=None, pad_token_id=0)
    for suffix, rows in zip(suffixes, got, strict=True):
        assert rows[0].tolist() == _whole(model, prefix_ids + suffix, max_new_tokens=6, eos_token_id=None)


def test_memory_budget_splits_the_calls() -> None:
    model = _llama()
    assert generation_bytes(model, 1000, 8, 10, 32) > generation_bytes(model, 1000, 4, 10, 32)
    lengths = [4, 9, 2, 9, 7, 1]
    roomy = plan_generation(model, 1000, lengths, 2, 32, PrefixCacheConfig(memory_mb=1024), 64)
    assert roomy == [[1, 3, 4, 0, 2, 5]]  # longest first, in one call
    tight = plan_generation(model, 1000, lengths, 2, 32, PrefixCacheConfig(memory_mb=1), 64)
    assert len(tight) > 1 and sorted(i for c in tight for i in c) == list(range(6))
    for call in tight:
        if len(call) > 1:
            assert generation_bytes(model, 1000, 2 * len(call), lengths[call[0]], 32) <= 2**20
    assert plan_generation(model, 1000, lengths, 2, 32, PrefixCacheConfig(memory_mb=1024), 4) == [[1, 3, 4, 0], [2, 5]]


def test_bad_arguments_are_refused() -> None:
    model = _llama()
    prefix = compute_prefix(model, [5, 6, 7])
    with pytest.raises(ValueError, match="seeds"):
        generate_many_from_prefix(model, prefix, [[1]], [1, 2], max_new_tokens=1)
    with pytest.raises(ValueError, match="at least one token"):
        generate_many_from_prefix(model, prefix, [[]], [1], max_new_tokens=1)
    with pytest.raises(ValueError, match="do_sample"):
        generate_many_from_prefix(model, prefix, [[1]], [1], max_new_tokens=1, do_sample=True)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_many_from_prefix(model, prefix, [[1]], [1], max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        Decoding(temperature=1.0, top_p=0.0)
    assert generate_many_from_prefix(model, prefix, [], [], max_new_tokens=1) == []


def test_backend_after_prefix_batches_and_keeps_each_documents_samples(tiny_model_path: Path) -> None:
    backend = HFBackend(str(tiny_model_path), device="cpu")
    prefix = "Alice is a painter. Bob is a baker. Carol is a pilot.\n"
    suffixes = ["Alice", "Bob bakes bread and", "Carol"]
    greedy = Sampling(n=1, temperature=0.0, top_p=1.0, max_new_tokens=6)
    batched = backend.after_prefix(prefix, suffixes, greedy, [1, 2, 3])
    cached = backend._prefix[1] if backend._prefix else None
    for suffix, samples in zip(suffixes, batched, strict=True):
        ids = backend.tokenizer(suffix, add_special_tokens=False)["input_ids"]
        one = generate_from_prefix(backend.model, cached, ids, max_new_tokens=6, do_sample=False,
                                   pad_token_id=backend.tokenizer.pad_token_id)
        assert [s.text for s in samples] == [s.text for s in backend._samples(one, greedy)]
    sampled = Sampling(n=2, temperature=1.0, top_p=0.95, max_new_tokens=6)
    together = backend.after_prefix(prefix, suffixes, sampled, [1, 2, 3])
    assert backend.after_prefix(prefix, suffixes[2:], sampled, [3]) == together[2:]
    assert backend.prefix_computations == 1
    with pytest.raises(UserError, match="window"):
        backend.after_prefix(prefix, suffixes, Sampling(n=1, temperature=0.0, top_p=1.0, max_new_tokens=5000),
                             [1, 2, 3])
