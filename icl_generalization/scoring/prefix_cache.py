"""Compute a long shared prefix once, then score or extend many continuations against its key/value cache.

An in-context task puts one long context in front of every choice of every question; global augmentation puts
the whole training corpus in front of every document. Both pay for the prefix once here:

- ``compute_prefix`` runs the prefix (in chunks, so a long prefix never materialises a prefix x prefix attention
  matrix or prefix x vocabulary logits) and keeps each layer's keys and values plus the logits of its last token.
- ``score_continuations`` scores many continuations against it. Continuations are **packed** into one sequence
  of batch size 1 with a block-causal attention mask: each token sees the whole prefix and the earlier tokens of
  its own continuation only, and gets the position it would have right after the prefix. We chose packing over
  the other classic design, expanding the cache to the batch size with right-padded continuations, because
  (a) memory stays one prefix cache however many continuations run at once, instead of batch x prefix;
  (b) there is no padding, so the tokens run are exactly prefix + continuations (the benchmark's minimum);
  (c) it needs nothing model-specific beyond ``position_ids`` and a 4D mask, which transformers' eager and SDPA
  attention take as given (``masking_utils`` returns a 4D mask unchanged). Sliding-window layers get a mask of
  their own that also hides what lies ``sliding_window`` positions or more behind each token; models with both
  kinds of layer (Gemma 2/3, Qwen2 with ``max_window_layers``) take a dict of masks keyed by layer type, as
  ``generate`` hands them.
- ``generate_from_prefix`` appends a suffix and samples with ``model.generate`` from the cached prefix.

The cached tensors are never written to: every forward gets a fresh ``DynamicCache`` built from them, and
``DynamicLayer.update`` concatenates into new tensors, so one prefix serves any number of batches and calls.
The prefix keeps every position even for sliding layers (a config-less ``DynamicCache``): the masks decide what
each token sees, and the model's own chunked-prefill masks count positions from the start of the prefix.

Not every architecture fits (ALiBi biases computed from a 2D mask, recurrent layers, models that ignore a 4D
mask): ``unsupported_reason`` names what the config alone rules out, and ``scoring.probe`` proves the rest on
each loaded model before the cached path is trusted.

Numerics: a cached pass adds the same terms in a different order than one full pass (chunked prefill, a masked
SDPA kernel instead of the ``is_causal`` one), so fp32 log-likelihoods differ from stock scoring by about 1e-5;
bf16 differs by its own rounding (about 1e-2 on a sum of a few tokens), as does any change of batch shape there.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from icl_generalization.scoring.attention import base_model as _base_model
from icl_generalization.scoring.attention import switch_unsupported_reason

# The layer types the packed masks describe; chunked, linear or recurrent layers need something else.
MASKED_LAYER_TYPES = frozenset({"full_attention", "sliding_attention"})
DEFAULT_BATCH_TOKENS = 1024
DEFAULT_CPU_MEMORY_MB = 2048


@dataclass(frozen=True)
class PrefixCacheConfig:
    """How much work one forward may carry.

    ``batch_tokens`` caps the tokens of one forward (packed continuations, or one chunk of a prefix).
    ``memory_mb`` is the budget for what one forward allocates on top of the model and the cached prefix
    (logits, attention scores, mask, the working copy of the cache); ``None`` means 2 GiB on CPU and half the
    free memory on CUDA. The number of packed tokens is the largest that fits both.
    """

    batch_tokens: int = DEFAULT_BATCH_TOKENS
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.batch_tokens, int) or self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be a positive integer, got {self.batch_tokens!r}")
        if self.memory_mb is not None and (not isinstance(self.memory_mb, int) or self.memory_mb < 1):
            raise ValueError(f"memory_mb must be a positive integer or None, got {self.memory_mb!r}")


@dataclass(frozen=True)
class CachedPrefix:
    """The keys/values of a prefix (batch size 1) and the logits that predict the token after it."""

    token_ids: tuple[int, ...]
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    last_logits: torch.Tensor  # [vocab]

    @property
    def length(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class ScoredContinuation:
    logprobs: torch.Tensor  # [n_scored], log-probability of each scored token
    greedy: bool  # every scored token is the argmax of its distribution

    @property
    def total(self) -> float:
        return float(self.logprobs.sum())


def text_config(model: Any) -> Any:
    """The decoder's config (a multimodal model's text config, or the config itself)."""
    config = model.config
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def config_int(config: Any, name: str) -> int | None:
    """A positive integer field of ``config``, or ``None`` where it is absent, unset or not one number."""
    try:
        value = getattr(config, name, None)
    except RuntimeError:  # heterogeneous configs refuse a global read of a per-layer field (Gemma 4 head_dim)
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def unsupported_reason(model: Any) -> str | None:
    """Why the config alone rules ``model`` out of the cached path (``None``: let ``scoring.probe`` decide)."""
    config = text_config(model)
    if getattr(model.config, "is_encoder_decoder", False):
        return "encoder-decoder models score continuations in the decoder; there is no shared decoder prefix"
    # Flash-attention models run the cached forwards in SDPA (``scoring.attention.masked_attention``).
    attention = switch_unsupported_reason(model)
    if attention is not None:
        return attention
    layer_types = getattr(config, "layer_types", None) or ()
    other = sorted(set(layer_types) - MASKED_LAYER_TYPES)
    if other:
        return f"layer types {other} have no packed mask (only {sorted(MASKED_LAYER_TYPES)})"
    return None


def _accepts_logits_to_keep(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(_base_model(model).forward).parameters


_CACHE_KEYWORDS: dict[type, str] = {}  # per model class, so the signature is read once


def cache_keyword(model: Any) -> str:
    """The keyword that hands a cache to ``model``'s forward (and ``generate``) in the installed transformers.

    transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns from 5.24 on and goes in 5.40);
    ``deprecate_kwarg`` keeps the signature, so the parameter list says which name this version takes.
    """
    base = _base_model(model)
    keyword = _CACHE_KEYWORDS.get(type(base))
    if keyword is None:
        keyword = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        _CACHE_KEYWORDS[type(base)] = keyword
    return keyword


def _cache_from(prefix: CachedPrefix, batch: int = 1) -> DynamicCache:
    # The public constructor copies each layer once (``expand`` makes batch rows without copying before that);
    # the model's update then concatenates into new tensors, so the prefix's own tensors are never written to.
    return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                                        for k, v in prefix.layers])


def input_device(model: Any) -> torch.device:
    """Where ``model`` takes its inputs: its first parameter's device, or, for a model accelerate dispatched over
    devices (``device_map``, lm-eval's ``parallelize=True``), the execution device of its top-level hook, which
    moves inputs to each layer's device and the outputs back (offloaded parameters sit on ``meta``)."""
    hook = getattr(_base_model(model), "_hf_hook", None)
    execution = getattr(hook, "execution_device", None)
    if execution is not None:
        return torch.device(execution)
    device: torch.device = next(model.parameters()).device
    return device


def _device(model: Any) -> torch.device:
    return input_device(model)


@torch.no_grad()
def compute_prefix(model: Any, token_ids: Sequence[int], config: PrefixCacheConfig | None = None) -> CachedPrefix:
    """Run ``token_ids`` once, in chunks of at most ``config.batch_tokens`` that fit its memory budget, and keep
    the cache."""
    if not token_ids:
        raise ValueError("a prefix needs at least one token")
    config = config or PrefixCacheConfig()
    device = _device(model)
    # No config: every layer keeps every position, sliding ones included (the masks apply the window).
    cache = DynamicCache()
    keyword = cache_keyword(model)
    keep = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}
    ids = torch.tensor([list(token_ids)], dtype=torch.long, device=device)
    logits = None
    # Each chunk attends to everything before it; the last, the longest reach, sets the size that fits memory.
    step = tokens_per_forward(model, len(token_ids), config)
    for start in range(0, ids.shape[1], step):
        chunk = ids[:, start:start + step]
        out = model(input_ids=chunk, use_cache=True, **{keyword: cache}, **keep)
        # Read by key: the ``past_key_values`` attribute of an output logs a deprecation from 5.24 on.
        returned = out.get(keyword)
        cache = returned if returned is not None else cache
        logits = out.logits[0, -1]
    assert logits is not None
    layers = []
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if not isinstance(keys, torch.Tensor) or not isinstance(values, torch.Tensor):
            raise TypeError(f"cache layer {type(layer).__name__} holds no key/value tensors to reuse")
        layers.append((keys, values))
    return CachedPrefix(token_ids=tuple(token_ids), layers=tuple(layers), last_logits=logits.detach())


def _bytes_per_element(model: Any) -> int:
    return int(next(model.parameters()).element_size())


def _memory_budget(model: Any, config: PrefixCacheConfig) -> int:
    if config.memory_mb is not None:
        return config.memory_mb * 2**20
    device = _device(model)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return DEFAULT_CPU_MEMORY_MB * 2**20


def forward_bytes(model: Any, prefix_length: int, n_tokens: int) -> int:
    """An upper estimate of what one packed forward of ``n_tokens`` after the prefix allocates.

    Logits and their log-softmax (fp32), per-head attention scores and probabilities of one layer (the math
    kernels materialise them), the mask, the working copy of every layer's keys/values, and a few hidden-state
    sized activations.
    """
    cfg = text_config(model)
    elem = _bytes_per_element(model)
    heads = config_int(cfg, "num_attention_heads") or 1
    hidden = config_int(cfg, "hidden_size") or 1
    kv_heads = config_int(cfg, "num_key_value_heads") or heads
    head_dim = config_int(cfg, "head_dim") or max(1, hidden // heads)
    layers = config_int(cfg, "num_hidden_layers") or 1
    vocab = config_int(cfg, "vocab_size") or 1
    inter = config_int(cfg, "intermediate_size") or 4 * hidden
    kv_len = prefix_length + n_tokens
    logits = n_tokens * vocab * (elem + 4 + 4)
    scores = 2 * heads * n_tokens * kv_len * 4 + n_tokens * kv_len * 4
    cache_copy = 2 * layers * 2 * kv_heads * head_dim * kv_len * elem
    activations = n_tokens * (8 * hidden + 3 * inter) * 4
    return logits + scores + cache_copy + activations


def tokens_per_forward(model: Any, prefix_length: int, config: PrefixCacheConfig) -> int:
    """The most continuation tokens one forward may pack: ``config.batch_tokens``, halved until the memory fits."""
    budget = _memory_budget(model, config)
    n = config.batch_tokens
    while n > 1 and forward_bytes(model, prefix_length, n) > budget:
        n //= 2
    return n


def _as_mask(model: Any, allowed: torch.Tensor) -> torch.Tensor:
    if model.config._attn_implementation == "sdpa":
        return allowed[None, None]
    # Eager attention adds the mask to the scores: 0 where allowed, the dtype's minimum elsewhere.
    dtype = next(model.parameters()).dtype
    additive = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return additive.masked_fill(~allowed, torch.finfo(dtype).min)[None, None]


def packed_masks(model: Any, prefix_length: int, lengths: Sequence[int],
                 device: torch.device) -> torch.Tensor | dict[str, torch.Tensor]:
    """The attention mask of one packed forward: [1, 1, n, prefix + n], or one per layer type.

    Every token sees the prefix and, causally, its own segment; nothing else. A sliding layer also sees only
    the ``sliding_window`` positions up to and including its own (transformers' ``sliding_window_overlay``:
    ``kv > q - window``), counted in the positions each token has after the prefix.
    """
    n = sum(lengths)
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                      torch.tensor(list(lengths), device=device))
    index = torch.arange(n, device=device)
    own = (segment[:, None] == segment[None, :]) & (index[:, None] >= index[None, :])
    allowed = torch.cat([torch.ones(n, prefix_length, dtype=torch.bool, device=device), own], dim=1)
    config = text_config(model)
    window = config_int(config, "sliding_window")
    layer_types = getattr(config, "layer_types", None) or ()
    # Hybrid models name their sliding layers; single-kind ones (Mistral, Starcoder2) slide wherever a window
    # is set, unless the config switches it off (Qwen2's use_sliding_window).
    sliding = "sliding_attention" in layer_types if layer_types else getattr(config, "use_sliding_window", True)
    if window is None or not sliding:
        return _as_mask(model, allowed)
    starts = torch.repeat_interleave(torch.cumsum(torch.tensor([0, *lengths[:-1]], device=device), 0),
                                     torch.tensor(list(lengths), device=device))
    query_pos = prefix_length + index - starts
    key_pos = torch.cat([torch.arange(prefix_length, device=device), query_pos])
    windowed = _as_mask(model, allowed & (query_pos[:, None] - key_pos[None, :] < window))
    if not layer_types:
        return windowed
    return {"full_attention": _as_mask(model, allowed), "sliding_attention": windowed}


def _plan_batches(lengths: Sequence[int], limit: int) -> list[list[int]]:
    """Consecutive indices whose input lengths sum to at most ``limit`` (a longer one runs alone)."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if current and used + n > limit:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        batches.append(current)
    return batches


def _score_one(logprobs: torch.Tensor, targets: list[int], n_scored: int) -> ScoredContinuation:
    rows = logprobs[-n_scored:]
    wanted = torch.tensor(targets[-n_scored:], dtype=torch.long, device=rows.device)
    picked = rows.gather(1, wanted[:, None]).squeeze(1)
    greedy = bool((rows.argmax(dim=-1) == wanted).all())
    return ScoredContinuation(logprobs=picked, greedy=greedy)


def _check_continuations(continuations: Sequence[Sequence[int]], n_rows: Sequence[int]) -> None:
    if len(continuations) != len(n_rows):
        raise ValueError("continuations and n_scored differ in length")
    for cont, k in zip(continuations, n_rows, strict=True):
        if not 1 <= k <= len(cont):
            raise ValueError(f"cannot score {k} tokens of a continuation of {len(cont)}")


@torch.no_grad()  # torch's decorator sets no-grad only while the generator runs
def continuation_logprobs(model: Any, prefix: CachedPrefix, continuations: Sequence[Sequence[int]],
                          n_rows: Sequence[int], config: PrefixCacheConfig | None = None,
                          softmax_dtype: torch.dtype | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """``(i, rows)`` for every continuation: the log-probability rows [n_rows[i], vocab] over the last
    ``n_rows[i]`` tokens of ``prefix + continuations[i]``, in batches of packed forwards.

    ``continuations[i]`` is every token after the prefix (at least one). The token right after the prefix is
    predicted by the prefix's last logits; the others by a packed forward over ``continuations[i][:-1]``.
    ``softmax_dtype`` is HFLM's: ``None`` keeps the model's dtype, as stock scoring does.
    """
    _check_continuations(continuations, n_rows)
    config = config or PrefixCacheConfig()
    device = _device(model)
    keyword = cache_keyword(model)
    first = F.log_softmax(prefix.last_logits, dim=-1, dtype=softmax_dtype)[None]
    inputs = [list(c[:-1]) for c in continuations]
    limit = tokens_per_forward(model, prefix.length, config)
    for batch in _plan_batches([len(x) for x in inputs], limit):
        lengths = [len(inputs[i]) for i in batch]
        packed = [i for i, n in zip(batch, lengths, strict=True) if n > 0]
        logits = None
        if packed:
            ids = torch.tensor([[t for i in packed for t in inputs[i]]], dtype=torch.long, device=device)
            positions = torch.tensor([[prefix.length + j for i in packed for j in range(len(inputs[i]))]],
                                     dtype=torch.long, device=device)
            mask = packed_masks(model, prefix.length, [len(inputs[i]) for i in packed], device)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                        **{keyword: _cache_from(prefix)})
            logits = out.logits[0]
        offset = 0
        for i, n in zip(batch, lengths, strict=True):
            rows = first
            if n > 0:
                assert logits is not None
                rows = torch.cat([first, F.log_softmax(logits[offset:offset + n], dim=-1, dtype=softmax_dtype)])
                offset += n
            yield i, rows[-n_rows[i]:]


def score_continuations(model: Any, prefix: CachedPrefix, continuations: Sequence[Sequence[int]],
                        n_scored: Sequence[int], config: PrefixCacheConfig | None = None,
                        softmax_dtype: torch.dtype | None = None) -> list[ScoredContinuation]:
    """Log-probabilities of the last ``n_scored[i]`` tokens of ``prefix + continuations[i]``, for every i.

    See ``continuation_logprobs`` for the arguments.
    """
    _check_continuations(continuations, n_scored)
    results: list[ScoredContinuation | None] = [None] * len(continuations)
    for i, rows in continuation_logprobs(model, prefix, continuations, n_scored, config, softmax_dtype):
        results[i] = _score_one(rows, list(continuations[i]), n_scored[i])
    return [r for r in results if r is not None]


@torch.no_grad()
def generate_from_prefix(model: Any, prefix: CachedPrefix, suffix_ids: Sequence[int],
                         **generate_kwargs: Any) -> torch.Tensor:
    """Generate after ``prefix + suffix_ids`` without recomputing the prefix; returns only the new tokens.

    ``generate_kwargs`` go to ``model.generate`` (``max_new_tokens``, ``do_sample``, ``temperature``,
    ``num_return_sequences``...). The result has one row per returned sequence.
    """
    if not suffix_ids:
        raise ValueError("generate_from_prefix needs at least one suffix token (the prefix's cache is complete)")
    # generate() repeats the prompt for num_return_sequences but not a cache handed to it, so the rows are made
    # here: the prompt repeated and the cache expanded to match, then one sequence per row.
    rows = int(generate_kwargs.pop("num_return_sequences", 1))
    device = _device(model)
    ids = torch.tensor([[*prefix.token_ids, *suffix_ids]] * rows, dtype=torch.long, device=device)
    # generate() took the cache under the same name as forward() in every release since the rename.
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                         **{cache_keyword(model): _cache_from(prefix, rows)}, **generate_kwargs)
    new_tokens: torch.Tensor = out[:, ids.shape[1]:]
    return new_tokens
