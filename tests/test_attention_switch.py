"""Flash-attention models on the cached path: the packed forwards run in SDPA, the stock path keeps its kernel.

flash-attn cannot be installed here (no CUDA), so the kernel is simulated: for the length of a test, transformers'
``flash_attention_2`` entry is replaced by a function that does what the real kernel does with a mask it cannot
take: it ignores it and applies plain causal attention (bottom-right aligned, as flash-attn does with a cache).
That is exact for the stock path's unpadded forwards and wrong for a packed forward, so it shows whether the
packed forwards really leave the flash kernel. The real kernel's numbers are not tested on this machine.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

from icl_generalization.scoring.attention import masked_attention, masked_target
from icl_generalization.scoring.prefix_cache import (
    PrefixCacheConfig,
    compute_prefix,
    score_continuations,
    unsupported_reason,
)
from icl_generalization.scoring.probe import check_cached_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")
VOCAB = 300
CALLS = {"flash": 0}


def _flash_like(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Causal attention that ignores the caller's mask, the queries aligned to the last keys (flash-attn's rule)."""
    CALLS["flash"] += 1
    q, k = query.shape[-2], key.shape[-2]
    causal = torch.ones(q, k, dtype=torch.bool, device=query.device).tril(diagonal=k - q)
    kwargs.pop("is_causal", None)
    output, _ = sdpa_attention_forward(module, query, key, value, causal[None, None], is_causal=False, **kwargs)
    return output, None


@pytest.fixture()
def flash_kernel() -> Iterator[None]:
    saved = AttentionInterface._global_mapping["flash_attention_2"]
    AttentionInterface.register("flash_attention_2", _flash_like)
    CALLS["flash"] = 0
    yield
    AttentionInterface.register("flash_attention_2", saved)


def _flash_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    config._attn_implementation = "sdpa"
    model = LlamaForCausalLM(config).eval()
    # What from_pretrained(attn_implementation="flash_attention_2") leaves behind; set directly because loading
    # that way checks for the flash-attn package and a GPU.
    model.config._attn_implementation_internal = "flash_attention_2"
    return model


def _stock_logprob(model: LlamaForCausalLM, tokens: list[int], n_scored: int) -> float:
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    return float(logprobs.gather(1, ids[0, 1:, None]).squeeze(1)[-n_scored:].sum())


def _case() -> tuple[list[int], list[list[int]], list[int]]:
    rng = random.Random(3)
    prefix = [rng.randrange(VOCAB) for _ in range(60)]
    conts = [[rng.randrange(VOCAB) for _ in range(n)] for n in (5, 3, 8, 1)]
    return prefix, conts, [len(c) for c in conts]


def test_a_flash_model_is_eligible_and_switches_only_inside_the_block(flash_kernel: None) -> None:
    model = _flash_model()
    assert unsupported_reason(model) is None
    assert masked_target(model) == "sdpa"
    with masked_attention(model):
        assert model.config._attn_implementation == "sdpa"
        assert all(layer.self_attn.config._attn_implementation == "sdpa" for layer in model.model.layers)
    assert model.config._attn_implementation == "flash_attention_2"
    # Restored even when the block raises.
    with pytest.raises(KeyError), masked_attention(model):
        raise KeyError("boom")
    assert model.config._attn_implementation == "flash_attention_2"


def test_packed_forwards_leave_the_flash_kernel_and_match_stock_scoring(flash_kernel: None) -> None:
    model = _flash_model()
    prefix_ids, conts, n_scored = _case()
    config = PrefixCacheConfig(batch_tokens=16)
    expected = [_stock_logprob(model, prefix_ids + c, k) for c, k in zip(conts, n_scored, strict=True)]
    assert CALLS["flash"] > 0  # the stock path ran the (simulated) flash kernel
    calls = CALLS["flash"]
    with masked_attention(model):
        got = score_continuations(model, compute_prefix(model, prefix_ids, config), conts, n_scored, config)
    assert CALLS["flash"] == calls  # no packed forward went through it
    assert [s.total for s in got] == pytest.approx(expected, abs=1e-4)
    # The same packed forward in the flash kernel ignores the block-causal mask: the simulation can tell.
    wrong = score_continuations(model, compute_prefix(model, prefix_ids, config), conts, n_scored, config)
    assert max(abs(s.total - e) for s, e in zip(wrong, expected, strict=True)) > 1e-3  # 10x the tolerance


def test_the_probe_trusts_a_flash_model_and_leaves_its_kernel(flash_kernel: None) -> None:
    model = _flash_model()
    verdict = check_cached_path(model, max_length=512)
    assert verdict.trusted, verdict.reason
    assert model.config._attn_implementation == "flash_attention_2"


def test_a_model_that_cannot_switch_is_refused(flash_kernel: None, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _flash_model()
    monkeypatch.setattr(LlamaForCausalLM, "_can_set_attn_implementation", classmethod(lambda cls: False))
    assert "cannot switch" in (unsupported_reason(model) or "")
    assert "flash_attention_2" in ALL_ATTENTION_FUNCTIONS.valid_keys()
