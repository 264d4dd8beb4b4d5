"""``PrefixCachedHFLM.generate_until`` against stock HFLM on the same tiny model: same strings, same order."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from forward_counter import count_forwards
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from icl_generalization.scoring import cached_hflm
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM

MIN_TOKENS = 64
# What ICL generation tasks ask for: a line, a short phrase, the default (end of text only), a bare string.
GEN_KWARGS: list[dict[str, Any]] = [
    {"until": ["\n"], "max_gen_toks": 8, "do_sample": False},
    {"until": [".", "\n\n"], "max_gen_toks": 5},
    {"max_gen_toks": 10, "temperature": 0.0},
    {"until": "place", "max_gen_toks": 6},
]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(tokenizer: Any) -> torch.nn.Module:
    """The tiny Llama of tiny_model.py with weights 25x larger: at the usual 0.02 its random weights write one
    token over and over whatever the prompt, so every path would agree trivially; these write varied text."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=0.5)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def _lms(model: torch.nn.Module, tokenizer: Any, **cached_args: Any) -> tuple[HFLM, PrefixCachedHFLM]:
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    # 48 tokens per forward: each prefix runs in several chunks.
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=MIN_TOKENS,
                              prefix_batch_tokens=48, **cached_args)
    return stock, cached


@pytest.fixture(scope="module")
def lms(tokenizer: Any) -> tuple[HFLM, PrefixCachedHFLM]:
    return _lms(_model(tokenizer), tokenizer)


def _context(start: int) -> str:
    return " ".join(f"fact {i} says item{i} is near place{i % 7}." for i in range(start, start + 12))


def _icl_requests(questions: int = 4) -> list[Instance]:
    """Two contexts of ~150 tokens, each followed by questions with different stop sequences and lengths."""
    return [Instance("generate_until", {}, (f"{_context(k)}\nQuestion {q}: where is item{k + q}?\nAnswer:",
                                            dict(GEN_KWARGS[q % len(GEN_KWARGS)])), q)
            for k in (0, 50) for q in range(questions)]


def _short_requests() -> list[Instance]:
    return [Instance("generate_until", {}, (f"Where is item{q}? It is", dict(GEN_KWARGS[q % len(GEN_KWARGS)])), q)
            for q in range(3)]



class _Recorder:
    """A cache hook that keeps what it is given (lm-eval's CachingLM reads these)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, str]] = []

    def add_partial(self, method: str, args: Any, result: str) -> None:
        self.calls.append((method, args, result))


def test_cached_generation_equals_stock_generation_with_each_prefix_run_once(
        lms: tuple[HFLM, PrefixCachedHFLM], monkeypatch: pytest.MonkeyPatch) -> None:
    stock, cached = lms
    requests = _icl_requests()
    expected = stock.generate_until(requests, disable_tqdm=True)
    assert cached.prefix_cache_verdict() is None  # the probe runs here, so its forwards are not counted below
    prefixes: list[int] = []
    real = cached_hflm.compute_prefix

    def counted(model: Any, token_ids: Any, config: Any = None) -> Any:
        prefixes.append(len(token_ids))
        return real(model, token_ids, config)

    monkeypatch.setattr(cached_hflm, "compute_prefix", counted)
    monkeypatch.setattr(cached, "cache_hook", _Recorder())
    before = dict(cached.prefix_stats)
    with count_forwards(cached.model) as seen:
        got = cached.generate_until(requests, disable_tqdm=True)
    assert got == expected
    assert any(got) and len(set(got)) > 2  # real, different generations, not all cut to nothing
    assert len(prefixes) == 2 and min(prefixes) >= MIN_TOKENS  # one prefix per context
    assert cached.prefix_stats["generate_groups"] - before["generate_groups"] == 2
    assert cached.prefix_stats["generate_cached_requests"] - before["generate_cached_requests"] == len(requests)
    assert cached.prefix_stats["generate_ordinary_requests"] == before["generate_ordinary_requests"]
    # Each prefix once; then per request its suffix and at most max_gen_toks - 1 fed-back tokens.
    contexts = [cached.tok_encode(r.args[0]) for r in requests]
    suffixes = sum(len(c) for c in contexts) - 4 * prefixes[0] - 4 * prefixes[1]
    new_tokens = sum(GEN_KWARGS[q % len(GEN_KWARGS)]["max_gen_toks"] - 1 for q in range(4)) * 2
    assert sum(prefixes) + len(requests) <= seen["tokens"] <= sum(prefixes) + suffixes + new_tokens
    assert seen["tokens"] < sum(len(c) for c in contexts) / 2
    # lm-eval's cache hook hears every request with its own arguments and the returned string.
    assert sorted(cached.cache_hook.calls, key=str) == sorted(
        [("generate_until", r.args, s) for r, s in zip(requests, got, strict=True)], key=str)


def test_a_stop_sequence_stops_generation_early(lms: tuple[HFLM, PrefixCachedHFLM]) -> None:
    stock, cached = lms
    context = f"{_context(0)}\nQuestion 7: where is item7?\nAnswer:"
    long_kwargs = {"until": [], "max_gen_toks": 12}
    [free] = stock.generate_until([Instance("generate_until", {}, (context, long_kwargs), 0)], disable_tqdm=True)
    # A stop string the model writes part-way: a word from its fourth on, first written there.
    words = free.split(" ")
    stop = next(" " + w for k, w in enumerate(words) if k >= 3 and w and free.find(" " + w) == len(" ".join(words[:k])))
    stopped = {"until": [stop], "max_gen_toks": 12}
    requests = [Instance("generate_until", {}, (context, dict(stopped)), 0),
                Instance("generate_until", {}, (context.replace("7", "8"), dict(long_kwargs)), 1)]
    expected = stock.generate_until(requests, disable_tqdm=True)
    assert expected[0] == free.split(stop)[0] and len(expected[0]) < len(free)
    assert cached.prefix_cache_verdict() is None
    generate_calls: list[int] = []
    real = cached.model.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        generate_calls.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    cached.model.generate = counted
    try:
        got = cached.generate_until(requests, disable_tqdm=True)
    finally:
        del cached.model.generate
    assert got == expected
    # Both requests generated from the cache; the stopped one stopped long before its 12 tokens.
    assert len(generate_calls) == 2 and min(generate_calls) < 12 == max(generate_calls)


def test_requests_without_a_shared_prefix_take_the_stock_path(lms: tuple[HFLM, PrefixCachedHFLM]) -> None:
    stock, cached = lms
    requests = _short_requests()
    before = dict(cached.prefix_stats)
    assert cached.generate_until(requests, disable_tqdm=True) == stock.generate_until(requests, disable_tqdm=True)
    assert cached.prefix_stats["generate_groups"] == before["generate_groups"]
    assert cached.prefix_stats["generate_ordinary_requests"] - before["generate_ordinary_requests"] == len(requests)


def test_order_is_preserved_for_mixed_shuffled_requests(lms: tuple[HFLM, PrefixCachedHFLM]) -> None:
    stock, cached = lms
    requests = _icl_requests(3) + _short_requests()
    random.Random(0).shuffle(requests)
    expected = stock.generate_until(requests, disable_tqdm=True)
    assert len(set(expected)) == len(expected)  # distinct strings, so a permutation would show
    before = dict(cached.prefix_stats)
    assert cached.generate_until(requests, disable_tqdm=True) == expected
    assert cached.prefix_stats["generate_cached_requests"] - before["generate_cached_requests"] == 6
    assert cached.prefix_stats["generate_ordinary_requests"] - before["generate_ordinary_requests"] == 3


def test_sampling_requests_sample_on_the_cached_path(lms: tuple[HFLM, PrefixCachedHFLM]) -> None:
    _, cached = lms
    sampled = [Instance("generate_until", {}, (r.args[0], {"until": [], "max_gen_toks": 8, "do_sample": True,
                                                           "temperature": 5.0}), 0) for r in _icl_requests()]
    greedy = cached.generate_until([Instance("generate_until", {}, (r.args[0], {"until": [], "max_gen_toks": 8}), 0)
                                    for r in sampled], disable_tqdm=True)
    before = dict(cached.prefix_stats)
    torch.manual_seed(1)
    first = cached.generate_until(sampled, disable_tqdm=True)
    torch.manual_seed(1)
    assert cached.generate_until(sampled, disable_tqdm=True) == first
    assert cached.prefix_stats["generate_cached_requests"] - before["generate_cached_requests"] == 2 * len(sampled)
    assert sum(a != b for a, b in zip(first, greedy, strict=True)) >= len(sampled) // 2


def test_prefix_cache_false_is_stock_generation(lms: tuple[HFLM, PrefixCachedHFLM], tokenizer: Any) -> None:
    stock, cached = lms
    off = PrefixCachedHFLM(pretrained=cached.model, tokenizer=tokenizer, prefix_cache="false", batch_size=4)
    requests = _icl_requests(2)
    assert off.generate_until(requests, disable_tqdm=True) == stock.generate_until(requests, disable_tqdm=True)
    assert off.prefix_stats["generate_groups"] == off.prefix_stats["generate_cached_requests"] == 0


def test_a_cached_path_that_fails_falls_back_for_the_rest(tokenizer: Any,
                                                         caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    stock, cached = _lms(_model(tokenizer), tokenizer)  # a model of its own: the failure marks it
    assert cached.prefix_cache_verdict() is None
    calls = {"n": 0}
    real = cached_hflm.generate_from_prefix

    def fails_second(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a shape the probe never met")
        return real(*args, **kwargs)

    monkeypatch.setattr(cached_hflm, "generate_from_prefix", fails_second)
    requests = _icl_requests()
    with caplog.at_level(logging.WARNING, logger=cached_hflm.__name__):
        got = cached.generate_until(requests, disable_tqdm=True)
        assert cached.generate_until(requests, disable_tqdm=True) == got  # now the stock way, no second line
    assert got == stock.generate_until(requests, disable_tqdm=True)
    [line] = [r.getMessage() for r in caplog.records
              if r.name == cached_hflm.__name__ and r.levelno == logging.WARNING]
    assert "failed after its probe passed (RuntimeError: a shape the probe never met)" in line
    assert calls["n"] == 2  # one request generated from the cache, then nothing more tried on this model
    assert cached.prefix_cache_verdict() is not None


def test_the_generation_benchmark_script_runs_both_paths(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util
    import json
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_generate.py"
    spec = importlib.util.spec_from_file_location("bench_generate", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["bench_generate.py", "--model", str(tiny_model_path), "--requests", "3",
                                      "--context-tokens", "300", "--new-tokens", "4", "--stock-batch-sizes", "1,2"])
    module.main()
    report = json.loads(capsys.readouterr().out)
    assert report["context_tokens"] >= 300 and report["requests"] == 3
    assert report["prefix_stats"]["generate_cached_requests"] == 3
    assert report["stock"]["batch_1"]["identical"] and report["stock"]["batch_2"]["identical"]
