"""The prefix-cache mechanism against plain full forwards, on a tiny random Llama (milliseconds per forward)."""

from __future__ import annotations

import random
import warnings
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from icl_generalization.scoring.prefix_cache import (
    PackedTree,
    PrefixCacheConfig,
    cache_keyword,
    compute_prefix,
    forward_bytes,
    generate_from_prefix,
    packed_masks,
    packing_unsupported_reason,
    score_continuations,
    tokens_per_forward,
    unsupported_reason,
)

VOCAB = 300


def _model(impl: str, dtype: torch.dtype = torch.float32, **overrides: object) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, **overrides)
    config._attn_implementation = impl
    return LlamaForCausalLM(config).eval().to(dtype)


def _reference(model: LlamaForCausalLM, tokens: list[int], n_scored: int) -> tuple[torch.Tensor, bool]:
    """Stock scoring: one full forward, the last n_scored tokens' log-probabilities and greedy flag."""
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    target = ids[0, 1:]
    picked = logprobs.gather(1, target[:, None]).squeeze(1)[-n_scored:]
    greedy = bool((logprobs.argmax(-1)[-n_scored:] == target[-n_scored:]).all())
    return picked, greedy


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_scores_match_full_forwards_and_leave_the_prefix_untouched(impl: str) -> None:
    model = _model(impl)
    rng = random.Random(1)
    prefix_ids = [rng.randrange(VOCAB) for _ in range(70)]
    # Lengths 1..9, so some continuations have nothing to pack and batches of 8 tokens split between them.
    conts = [[rng.randrange(VOCAB) for _ in range(n)] for n in (1, 3, 9, 2, 5, 1, 7, 4)]
    n_scored = [1, 2, 9, 1, 3, 1, 4, 4]
    prefix = compute_prefix(model, prefix_ids, PrefixCacheConfig(batch_tokens=16))  # 5 prefill chunks
    before = [(k.clone(), v.clone()) for k, v in prefix.layers]
    got = score_continuations(model, prefix, conts, n_scored, PrefixCacheConfig(batch_tokens=8))
    for cont, k, scored in zip(conts, n_scored, got, strict=True):
        expected, greedy = _reference(model, prefix_ids + cont, k)
        assert scored.logprobs.shape == (k,)
        torch.testing.assert_close(scored.logprobs, expected, atol=1e-5, rtol=0)
        assert scored.greedy == greedy
    for (k0, v0), (k1, v1) in zip(before, prefix.layers, strict=True):
        assert torch.equal(k0, k1) and torch.equal(v0, v1)
    # Scoring twice from the same prefix gives the same answer (nothing leaked between calls).
    again = score_continuations(model, prefix, conts, n_scored, PrefixCacheConfig(batch_tokens=64))
    for a, b in zip(got, again, strict=True):
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-6, rtol=0)


def test_greedy_flag_is_true_for_the_models_own_argmax_continuation() -> None:
    model = _model("sdpa")
    prefix_ids = list(range(10, 50))
    greedy_cont = generate_from_prefix(model, compute_prefix(model, prefix_ids), [7], max_new_tokens=4,
                                       do_sample=False)[0].tolist()
    prefix = compute_prefix(model, [*prefix_ids, 7])
    [scored] = score_continuations(model, prefix, [greedy_cont], [4])
    assert scored.greedy
    wrong = [(t + 1) % VOCAB for t in greedy_cont]
    [scored_wrong] = score_continuations(model, prefix, [wrong], [4])
    assert not scored_wrong.greedy


def test_bf16_scores_are_close_to_bf16_full_forwards() -> None:
    model = _model("sdpa", torch.bfloat16)
    rng = random.Random(2)
    prefix_ids = [rng.randrange(VOCAB) for _ in range(60)]
    conts = [[rng.randrange(VOCAB) for _ in range(n)] for n in (2, 4, 6)]
    got = score_continuations(model, compute_prefix(model, prefix_ids), conts, [2, 4, 6])
    for cont, scored in zip(conts, got, strict=True):
        expected, _ = _reference(model, prefix_ids + cont, len(cont))
        assert scored.logprobs.dtype == torch.bfloat16
        # bf16 keeps about 3 significant digits; the sum of a few log-probs of ~-5.7 each agrees to ~0.1.
        assert abs(scored.total - float(expected.sum())) < 0.1


def test_generate_from_prefix_equals_generate_on_the_whole_prompt() -> None:
    model = _model("sdpa")
    prefix_ids = list(range(20, 80))
    prefix = compute_prefix(model, prefix_ids, PrefixCacheConfig(batch_tokens=25))
    for suffix in ([3, 4, 5], [9]):
        cached = generate_from_prefix(model, prefix, suffix, max_new_tokens=6, do_sample=False)
        with torch.no_grad():
            whole = model.generate(torch.tensor([prefix_ids + suffix]), max_new_tokens=6, do_sample=False)
        assert cached.tolist() == whole[:, len(prefix_ids) + len(suffix):].tolist()
    torch.manual_seed(3)
    sampled = generate_from_prefix(model, prefix, [1], max_new_tokens=5, do_sample=True, num_return_sequences=3)
    assert sampled.shape == (3, 5)
    with pytest.raises(ValueError, match="suffix"):
        generate_from_prefix(model, prefix, [], max_new_tokens=1)


def test_memory_budget_bounds_the_tokens_of_one_forward() -> None:
    model = _model("sdpa")
    roomy = tokens_per_forward(model, 100, PrefixCacheConfig(batch_tokens=512, memory_mb=1024))
    assert roomy == 512
    tight = tokens_per_forward(model, 100, PrefixCacheConfig(batch_tokens=512, memory_mb=1))
    assert 1 <= tight < 512
    assert forward_bytes(model, 100, tight) <= 2**20 or tight == 1
    # A longer prefix leaves room for fewer packed tokens under the same budget.
    assert tokens_per_forward(model, 20000, PrefixCacheConfig(batch_tokens=512, memory_mb=8)) <= tight * 2


def test_unsupported_models_are_named() -> None:
    assert unsupported_reason(_model("sdpa")) is None
    # Flash-attention kernels cannot be loaded on this machine; the check only reads the config.
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert "attention implementation" in (unsupported_reason(flash) or "")
    # Sliding layers have a packed mask now; chunked or recurrent layers do not.
    windowed = _model("sdpa", layer_types=["sliding_attention", "full_attention"], sliding_window=16)
    assert unsupported_reason(windowed) is None
    assert packing_unsupported_reason(windowed) is None
    # Recurrent or chunked layers rule out packing only: the unpacked mode (the model's own masks) may still serve.
    hybrid = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa",
                                                    layer_types=["linear_attention", "full_attention"]))
    assert unsupported_reason(hybrid) is None
    assert "linear_attention" in (packing_unsupported_reason(hybrid) or "")


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="batch_tokens"):
        PrefixCacheConfig(batch_tokens=0)
    with pytest.raises(ValueError, match="memory_mb"):
        PrefixCacheConfig(memory_mb=-5)


def _windowed(name: str, impl: str) -> torch.nn.Module:
    """A tiny model with a 16-token window, far shorter than the prefixes below; hybrid where the family is."""
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    sizes = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=8, max_position_embeddings=512, sliding_window=16)
    configs = {
        "gemma2": (Gemma2ForCausalLM, Gemma2Config(**sizes)),  # sliding and full layers alternate
        "gemma3": (Gemma3ForCausalLM, Gemma3TextConfig(**sizes, sliding_window_pattern=2)),
        "mistral": (MistralForCausalLM, MistralConfig(**sizes)),  # every layer slides, no layer_types
        "qwen2": (Qwen2ForCausalLM, Qwen2Config(**sizes, use_sliding_window=True, max_window_layers=2)),
    }
    model_class, config = configs[name]
    config._attn_implementation = impl
    torch.manual_seed(0)
    return model_class(config).eval()


# Gemma2 builds with eager attention only.
@pytest.mark.parametrize(("name", "impl"), [("gemma2", "eager"), ("gemma3", "sdpa"), ("gemma3", "eager"),
                                            ("mistral", "sdpa"), ("mistral", "eager"), ("qwen2", "sdpa"),
                                            ("qwen2", "eager")])
def test_sliding_window_and_hybrid_models_match_full_forwards(name: str, impl: str) -> None:
    model = _windowed(name, impl)
    rng = random.Random(3)
    prefix_ids = [rng.randrange(VOCAB) for _ in range(61)]
    # The 25-token continuation reaches past the window from inside its own segment too.
    conts = [[rng.randrange(VOCAB) for _ in range(n)] for n in (1, 6, 25, 3)]
    n_scored = [len(c) for c in conts]
    prefix = compute_prefix(model, prefix_ids, PrefixCacheConfig(batch_tokens=7))  # chunks shorter than the window
    got = score_continuations(model, prefix, conts, n_scored, PrefixCacheConfig(batch_tokens=40))
    for cont, scored in zip(conts, got, strict=True):
        expected, greedy = _reference(model, prefix_ids + cont, len(cont))
        torch.testing.assert_close(scored.logprobs, expected, atol=1e-5, rtol=0)
        assert scored.greedy == greedy
    # The window really bites: the same weights without it score the long continuation differently.
    model.config.sliding_window = 4096
    unwindowed, _ = _reference(model, prefix_ids + conts[2], len(conts[2]))
    assert float((unwindowed - got[2].logprobs).abs().max()) > 1e-2


def test_hybrid_models_get_one_mask_per_layer_type() -> None:
    masks = packed_masks(_windowed("gemma3", "sdpa"), 20, PackedTree.build([[1, 2, 3], [4, 5]]),
                         torch.device("cpu"))
    assert isinstance(masks, dict) and set(masks) == {"full_attention", "sliding_attention"}
    full, sliding = masks["full_attention"][0, 0], masks["sliding_attention"][0, 0]
    assert full.shape == sliding.shape == (5, 25)
    # The last token of the first segment sits at position 22: it sees positions 7..22 through the window.
    assert full[2, :20].all() and sliding[2, 7:20].all() and not sliding[2, :7].any()
    assert full[2, 20:23].all() and not full[2, 23:].any()  # its own segment, causally; never the other one
    assert isinstance(packed_masks(_windowed("mistral", "sdpa"), 20, PackedTree.build([[1, 2, 3]]),
                                   torch.device("cpu")), torch.Tensor)


def test_scoring_and_generation_raise_no_deprecation_warnings() -> None:
    # transformers 5.24 renamed past_key_values to cache and warns (FutureWarning) on every forward that uses the
    # old name; the cached path must use whichever name the installed version takes.
    model = _model("sdpa")
    assert cache_keyword(model) in ("cache", "past_key_values")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prefix = compute_prefix(model, list(range(40)), PrefixCacheConfig(batch_tokens=16))
        score_continuations(model, prefix, [[1, 2, 3], [4]], [3, 1])
        generate_from_prefix(model, prefix, [5], max_new_tokens=3, do_sample=False)


def test_packed_tree_runs_a_shared_start_once_and_keeps_subtrees_contiguous() -> None:
    # A question [5, 6, 7] with three choices, two of which share their first token.
    tree = PackedTree.build([[5, 6, 7, 1, 2], [5, 6, 7, 1, 3], [5, 6, 7, 4], [9]])
    assert len(tree.tokens) == 8  # 3 question tokens, then 1, 2, 3, 4, and the separate [9]
    for path, seq in zip(tree.paths, ([5, 6, 7, 1, 2], [5, 6, 7, 1, 3], [5, 6, 7, 4], [9]), strict=True):
        assert [tree.tokens[k] for k in path] == seq
        assert [tree.depth[k] for k in path] == list(range(len(seq)))
        # Each token's ancestors are exactly the earlier tokens of its own path.
        for j, k in enumerate(path):
            ancestors = [a for a in range(len(tree.tokens)) if a <= k < tree.end[a]]
            assert ancestors == list(path[:j + 1])


def _counting(model: torch.nn.Module) -> tuple[dict[str, int], list[torch.utils.hooks.RemovableHandle]]:
    seen = {"tokens": 0, "logit_rows": 0}

    def count_tokens(_m: object, _a: object, kwargs: dict[str, torch.Tensor]) -> None:
        seen["tokens"] += int(kwargs["input_ids"].numel())

    def count_rows(_m: object, _a: object, output: torch.Tensor) -> None:
        seen["logit_rows"] += int(output.shape[-2])

    return seen, [model.register_forward_pre_hook(count_tokens, with_kwargs=True),
                  model.get_output_embeddings().register_forward_hook(count_rows)]


@pytest.mark.parametrize("heads", ["indices", "every row"])
def test_questions_run_once_per_question_and_only_scored_rows_get_logits(
        heads: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from icl_generalization.scoring import prefix_cache

    if heads == "every row":  # a model whose forward takes no positions to keep: all logits, the same answer
        monkeypatch.setattr(prefix_cache, "keeps_indices", lambda _model: False)
    model = _model("sdpa")
    rng = random.Random(5)
    prefix_ids = [rng.randrange(VOCAB) for _ in range(50)]
    questions = [[rng.randrange(VOCAB) for _ in range(n)] for n in (7, 4)]
    choices = [[[11, 12], [11, 13, 14], [15]], [[16, 17, 18], [19]]]  # the first two share their first token
    conts = [q + c for q, cs in zip(questions, choices, strict=True) for c in cs]
    n_scored = [len(c) for q, cs in zip(questions, choices, strict=True) for c in cs]
    prefix = compute_prefix(model, prefix_ids)
    cache = prefix.cache
    seen, hooks = _counting(model)
    got = score_continuations(model, prefix, conts, n_scored, PrefixCacheConfig(batch_tokens=14))
    for hook in hooks:
        hook.remove()
    for cont, k, scored in zip(conts, n_scored, got, strict=True):
        expected, greedy = _reference(model, prefix_ids + cont, k)
        torch.testing.assert_close(scored.logprobs, expected, atol=1e-5, rtol=0)
        assert scored.greedy == greedy
    # Inputs are continuations minus their last token; the trie runs each question and shared choice token once.
    trie_tokens = len(PackedTree.build([c[:-1] for c in conts[:3]]).tokens) + len(
        PackedTree.build([c[:-1] for c in conts[3:]]).tokens)
    assert seen["tokens"] == trie_tokens == 7 + 2 + 4 + 2 < sum(len(c) - 1 for c in conts)
    scored_rows = len({(q, i) for q, cs in enumerate(choices) for c in cs for i in range(len(c))})
    assert seen["logit_rows"] == (scored_rows if heads == "indices" else trie_tokens)
    # One working cache, cut back to the prefix after every packed forward.
    assert prefix.cache is cache and cache.get_seq_length() == len(prefix_ids)


def test_a_failing_forward_leaves_the_prefix_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("sdpa")
    prefix = compute_prefix(model, list(range(30)))
    before = [k.clone() for k, _ in prefix.layers]

    def fail(_m: object, _a: object, _o: object) -> None:
        raise RuntimeError("boom")

    handle = model.model.norm.register_forward_hook(fail)  # after every layer has appended to the cache
    with pytest.raises(RuntimeError, match="boom"):
        score_continuations(model, prefix, [[1, 2, 3]], [2])
    handle.remove()
    assert prefix.cache.get_seq_length() == 30
    assert all(torch.equal(a, k) for a, (k, _) in zip(before, prefix.layers, strict=True))
    assert score_continuations(model, prefix, [[1, 2, 3]], [2])[0].logprobs.shape == (2,)
