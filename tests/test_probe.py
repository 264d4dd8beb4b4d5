"""The cached path proves itself per model: a probe decides, a refusal is one log line and stock numbers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from architecture_matrix import build
from forward_counter import count_forwards
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from icl_generalization.scoring import cached_hflm
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM
from icl_generalization.scoring.probe import cached_path_verdict, distrust, probe_prefix_length

MIN_TOKENS = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def _requests() -> list[Instance]:
    """Two contexts of ~120 tokens, each followed by questions with choices: what an ICL shard looks like."""
    contexts = [" ".join(f"fact {i} says item{i} is near place{i % 7}." for i in range(k, k + 12)) for k in (0, 50)]
    return [Instance("loglikelihood", {}, (f"{c} Question {q}: where is item{q}?", f" place{a}"), 0)
            for c in contexts for q in range(2) for a in range(3)]


def _hflms(model: torch.nn.Module, tokenizer: Any) -> tuple[HFLM, PrefixCachedHFLM]:
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    cached = PrefixCachedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_min_tokens=MIN_TOKENS)
    return stock, cached


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == cached_hflm.__name__ and r.levelno == logging.WARNING]


def test_the_verdict_is_computed_once_per_model_object() -> None:
    model = build("llama", None)
    with count_forwards(model) as seen:
        verdict = cached_path_verdict(model, 512)
        assert verdict.trusted and verdict.max_error <= 1e-4
        assert seen["calls"] > 0
        first = seen["calls"]
        assert cached_path_verdict(model, 512) is verdict and seen["calls"] == first  # nothing run again
        # Another model object of the same class gets its own probe.
        assert cached_path_verdict(build("llama", None), 512).trusted
        assert not distrust(model, "test").trusted and cached_path_verdict(model, 512).reason == "test"


def test_the_probe_reaches_past_a_declared_window() -> None:
    assert probe_prefix_length(build("llama", None), 2048) == 300
    # GPT-Neo's local layers look back 256 tokens; a probe shorter than that could never see them go wrong.
    assert probe_prefix_length(build("gpt_neo", None), 2048) == 256 + 64
    assert probe_prefix_length(build("gpt_neo", None), 200) == 200 - 9  # capped by what the model may read


def test_a_half_precision_model_is_proved_in_float32_and_put_back_as_it_was() -> None:
    model = build("llama", None).to(torch.bfloat16)
    rotary = model.model.rotary_emb
    rotary.inv_freq = rotary.inv_freq.float()  # a tensor a model keeps in fp32 must stay so
    before = {name: t.clone() for name, t in [*model.named_parameters(), *model.named_buffers()]}
    assert cached_path_verdict(model, 512).trusted
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        assert tensor.dtype == before[name].dtype and torch.equal(tensor, before[name]), name
    # In bf16 alone MPT's packing error (0.12 nats here) hides under the rounding; the float32 stage finds it, and
    # the unpacked mode (ALiBi from the model's own mask) passes both stages.
    mpt = build("mpt", None).to(torch.bfloat16)
    verdict = cached_path_verdict(mpt, 512)
    assert verdict.trusted and not verdict.packed
    assert "differs by up to" in (verdict.unpacked_because or "") and "in float32" in (verdict.unpacked_because or "")
    assert all(p.dtype == torch.bfloat16 for p in mpt.parameters())


@pytest.mark.parametrize("architecture", ["mpt", "bloom", "gpt_neo"])  # packing: silently wrong; crashing; wrong
def test_a_model_packing_fails_on_is_scored_unpacked_with_one_log_line(architecture: str, tokenizer: Any,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    model = build(architecture, None, {"vocab_size": len(tokenizer)})
    stock, cached = _hflms(model, tokenizer)
    requests = _requests()
    with caplog.at_level(logging.INFO, logger=cached_hflm.__name__):
        got = cached.loglikelihood(requests, disable_tqdm=True)
        assert cached.loglikelihood(requests, disable_tqdm=True) == got  # a second call: no second line
    expected = stock.loglikelihood(requests, disable_tqdm=True)
    assert [g for _, g in got] == [e for _, e in expected]
    assert max(abs(a - b) for (a, _), (b, _) in zip(got, expected, strict=True)) < 1e-4
    [line] = [r.getMessage() for r in caplog.records if "unpacked" in r.getMessage()]
    assert line.startswith("prefix cache unpacked (one forward per continuation after the cached prefix): packing ")
    assert not _warnings(caplog)
    assert cached.prefix_stats["groups"] == 2 * 2  # two contexts, scored twice
    # Unpacked, every continuation runs whole: each question once per choice.
    assert cached.prefix_stats["packed_tokens"] == cached.prefix_stats["planned_tokens"]


def test_a_model_both_modes_fail_on_is_scored_the_stock_way_with_one_log_line(
        tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    model = build("openai-gpt", None, {"vocab_size": len(tokenizer)})  # packing crashes, unpacked is wrong
    stock, cached = _hflms(model, tokenizer)
    requests = _requests()
    with caplog.at_level(logging.WARNING, logger=cached_hflm.__name__):
        got = cached.loglikelihood(requests, disable_tqdm=True)
        assert cached.loglikelihood(requests, disable_tqdm=True) == got
    assert got == stock.loglikelihood(requests, disable_tqdm=True)
    [line] = _warnings(caplog)
    assert line.startswith("prefix cache off, scoring the stock way: packed: the cached path failed on a probe")
    assert "; unpacked: the cached path differs by up to" in line
    assert cached.prefix_stats["groups"] == 0


def test_a_cached_path_that_fails_after_its_probe_falls_back_for_the_rest(
        tokenizer: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build("llama", None, {"vocab_size": len(tokenizer)})
    stock, cached = _hflms(model, tokenizer)
    assert cached.prefix_cache_verdict() is None

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a shape the probe never met")

    monkeypatch.setattr(cached_hflm, "score_continuations", broken)
    requests = _requests()
    with caplog.at_level(logging.WARNING, logger=cached_hflm.__name__):
        got = cached.loglikelihood(requests, disable_tqdm=True)
    assert got == stock.loglikelihood(requests, disable_tqdm=True)
    [line] = _warnings(caplog)
    assert "failed after its probe passed (RuntimeError: a shape the probe never met)" in line
    assert cached.prefix_cache_verdict() is not None  # not tried again on this model


def test_bf16_cached_scoring_chooses_the_same_answers_as_stock(task_cache: Path, tiny_model_path: Path,
                                                               tokenizer: Any) -> None:
    from transformers import AutoModelForCausalLM

    from icl_generalization.tasks.options import TaskOptions
    from icl_generalization.tasks.rows import task_rows

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.bfloat16).eval()
    stock, cached = _hflms(model, tokenizer)
    assert cached.prefix_cache_verdict() is None  # the bf16 probe passes, so the cached path really runs
    rows = list(task_rows("reversal_curse", "p2d_reverse", "icl",
                          TaskOptions(pretrained=str(tiny_model_path), context_budget=300)).rows)
    rows = [r for s in sorted({r["shard"] for r in rows})[:2] for r in [x for x in rows if x["shard"] == s][:6]]
    requests = [Instance("loglikelihood", row, (row["query"], choice), i)
                for row in rows for i, choice in enumerate(row["choices"])]
    expected = stock.loglikelihood(requests, disable_tqdm=True)
    got = cached.loglikelihood(requests, disable_tqdm=True)
    assert cached.prefix_stats["groups"] == 2
    start = 0
    for row in rows:
        n = len(row["choices"])
        stock_ll = [ll for ll, _ in expected[start:start + n]]
        cached_ll = [ll for ll, _ in got[start:start + n]]
        assert max(range(n), key=stock_ll.__getitem__) == max(range(n), key=cached_ll.__getitem__)
        start += n
