"""Generate after one cached prefix for many suffixes at once, each reproducible from its own seed.

Global augmentation writes text for every document after the same long prefix (the training corpus).
``generate_many_from_prefix`` computes nothing of the prefix again (``prefix_cache.compute_prefix`` did) and runs
many suffixes in one ``model.generate`` call:

- **Rows.** Each suffix is repeated for its ``n`` samples. Rows hold ``prefix + pads + suffix`` with a 2D
  attention mask that is 0 on the pads, so every suffix ends at the right edge, where generation continues.
  ``generate`` derives position ids from the mask's cumulative sum, so a suffix token sits at the position it
  has right after the prefix, pads or not, and nothing attends to a pad. The prefix's cache is expanded to the
  rows once. Where every layer attends to everything (no sliding window), that copy goes into a
  ``StaticCache`` allocated for the whole call, which each step writes its token into; a ``DynamicCache``
  (``prefix_cache.expanded_cache``, for the others) concatenates every layer into new tensors at every step,
  which copies the whole batch's cache per token: measured 1.5x slower on the default model (16 rows of 1,400
  cached tokens, CPU). ``generate`` would compile the forward for a static cache on a GPU; it is told not to,
  since every call has its own shape.
- **Seeds.** Sampling draws from one generator per suffix (``seeded_sampling``), so a suffix's samples do not
  depend on the other suffixes of its call, on their order, or on how the calls are split.
- **Memory and exactness.** Suffixes run longest first in calls of at most ``max_batch`` whose cache (every row
  holds the prefix) and first forward fit the memory budget of ``PrefixCacheConfig`` (``generation_bytes``).
  Pads shift the cache positions that sliding-window masks count, and models whose forward takes no
  ``position_ids`` count positions from the cache; for those, a call only groups suffixes of one length (no
  pads) unless the whole sequence fits inside the sliding window.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers import Cache, LogitsProcessorList, StaticCache

from icl_generalization.scoring.attention import base_model
from icl_generalization.scoring.prefix_cache import (
    CachedPrefix,
    ModelDims,
    PrefixCacheConfig,
    cache_keyword,
    expanded_cache,
    input_device,
    memory_budget,
    sliding_window,
    text_config,
)
from icl_generalization.scoring.seeded_sampling import Decoding, SeededGumbelSampler

DEFAULT_MAX_BATCH = 64
# Chosen by this module, so a caller's value would contradict it.
_RESERVED = frozenset({"do_sample", "num_return_sequences", "temperature", "top_p", "top_k", "logits_processor",
                       "input_ids", "attention_mask", "num_beams", "disable_compile",
                       "max_length", "min_length"})


def generation_bytes(model: Any, prefix_length: int, rows: int, suffix_tokens: int, new_tokens: int) -> int:
    """An upper estimate of what one ``generate`` call of ``rows`` rows allocates on top of the model and the
    cached prefix: every row's cache of the whole sequence, plus one layer's concatenation in flight (a dynamic
    cache's; a static one has none); the first
    forward over the padded suffixes (one layer's attention scores and probabilities, its 4D mask, a few hidden
    sized activations); and one step's last-token logits with their fp32 copy and the float64 noise."""
    d = ModelDims.of(model)
    total = prefix_length + suffix_tokens + new_tokens
    cache = rows * d.kv_bytes(total) * (d.layers + 1)
    scores = rows * suffix_tokens * (prefix_length + suffix_tokens) * (2 * d.heads * 4 + 4)
    activations = rows * suffix_tokens * (8 * d.hidden + 3 * d.inter) * 4
    logits = rows * d.vocab * (d.elem + 4 + 8 + 8)
    return cache + scores + activations + logits


def _pads_keep_positions(model: Any, total_length: int) -> bool:
    """Whether pads between prefix and suffix leave every real token's view unchanged (see the module doc)."""
    if "position_ids" not in inspect.signature(base_model(model).forward).parameters:
        return False
    window = sliding_window(model)
    return window is None or total_length <= window


def _call_cache(model: Any, prefix: CachedPrefix, rows: int, length: int) -> Cache:
    """The prefix's cache for ``rows`` rows of ``length`` positions in all: static where no layer slides."""
    layer_types = set(getattr(text_config(model), "layer_types", None) or ())
    if sliding_window(model) is not None or not layer_types <= {"full_attention"}:
        return expanded_cache(prefix, rows)
    cache = StaticCache(config=text_config(model), max_cache_len=length)
    for index, (keys, values) in enumerate(prefix.layers):
        positions = torch.arange(prefix.length, device=keys.device)
        # ``expand`` views the one prefix row as ``rows`` rows; the static layer copies them into its tensors.
        cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), index,
                     {"cache_position": positions})
    return cache


def plan_generation(model: Any, prefix_length: int, lengths: Sequence[int], n: int, new_tokens: int,
                    config: PrefixCacheConfig, max_batch: int) -> list[list[int]]:
    """Indices of the suffixes of each ``generate`` call: longest first (the first of a call sets its width),
    at most ``max_batch`` per call and as many as fit the memory budget (a suffix whose ``n`` rows alone do not
    fit runs alone, as a one-suffix call would)."""
    if not lengths:
        return []
    budget = memory_budget(model, config)
    mixed = _pads_keep_positions(model, prefix_length + max(lengths) + new_tokens)
    calls: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        if current:
            width = lengths[current[0]]
            fits = (len(current) < max_batch and (mixed or lengths[i] == width)
                    and generation_bytes(model, prefix_length, (len(current) + 1) * n, width, new_tokens) <= budget)
            if not fits:
                calls.append(current)
                current = []
        current.append(i)
    calls.append(current)
    return calls


def _check(suffixes: Sequence[Sequence[int]], seeds: Sequence[int], n: int, max_batch: int,
           generate_kwargs: dict[str, Any]) -> None:
    if len(suffixes) != len(seeds):
        raise ValueError(f"{len(suffixes)} suffixes but {len(seeds)} seeds")
    if any(not s for s in suffixes):
        raise ValueError("every suffix needs at least one token (the prefix's cache is complete)")
    if n < 1 or max_batch < 1:
        raise ValueError(f"n and max_batch must be positive, got n={n}, max_batch={max_batch}")
    reserved = sorted(_RESERVED & set(generate_kwargs))
    if reserved:
        raise ValueError(f"generate_many_from_prefix sets {reserved} itself (pass a Decoding)")


@torch.no_grad()
def generate_many_from_prefix(model: Any, prefix: CachedPrefix, suffixes: Sequence[Sequence[int]],
                              seeds: Sequence[int], n: int = 1, *, max_new_tokens: int,
                              decoding: Decoding | None = None,
                              max_batch: int = DEFAULT_MAX_BATCH, config: PrefixCacheConfig | None = None,
                              **generate_kwargs: Any) -> list[torch.Tensor]:
    """For each suffix, ``n`` sequences generated after ``prefix + suffix``: a tensor [n, new] of new tokens.

    ``seeds[i]`` seeds suffix i's samples (unused when ``decoding`` is greedy, the default). ``generate_kwargs``
    go to ``model.generate`` (``pad_token_id``, ``eos_token_id``...). As in ``generate``, a row
    that stopped is filled with ``pad_token_id`` up to the longest row of its call, so rows of different calls
    may differ in width; cut each at its first stop token.
    """
    _check(suffixes, seeds, n, max_batch, generate_kwargs)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    decoding = decoding or Decoding()
    calls = plan_generation(model, prefix.length, [len(s) for s in suffixes], n, max_new_tokens,
                            config or PrefixCacheConfig(), max_batch)
    results: list[torch.Tensor | None] = [None] * len(suffixes)
    for call in calls:
        rows = _generate_call(model, prefix, [suffixes[i] for i in call], [seeds[i] for i in call], n, decoding,
                              max_new_tokens, generate_kwargs)
        for k, i in enumerate(call):
            results[i] = rows[k * n:(k + 1) * n]
    return [r for r in results if r is not None]


def _generate_call(model: Any, prefix: CachedPrefix, suffixes: list[Sequence[int]], seeds: list[int], n: int,
                   decoding: Decoding, max_new_tokens: int, generate_kwargs: dict[str, Any]) -> torch.Tensor:
    """One ``generate`` call: ``n`` rows per suffix, each ``prefix + pads + suffix``; the new tokens."""
    device = input_device(model)
    width = max(len(s) for s in suffixes)
    rows = n * len(suffixes)
    # The pads are never attended to nor counted in positions, so any id serves; 0 is in every vocabulary.
    tail = torch.zeros(rows, width, dtype=torch.long)
    tail_mask = torch.zeros(rows, width, dtype=torch.long)
    for k, suffix in enumerate(suffixes):
        tail[k * n:(k + 1) * n, width - len(suffix):] = torch.tensor(list(suffix), dtype=torch.long)
        tail_mask[k * n:(k + 1) * n, width - len(suffix):] = 1
    head = torch.tensor([prefix.token_ids], dtype=torch.long)
    ids = torch.cat([head.expand(rows, -1), tail], dim=1).to(device)
    mask = torch.cat([torch.ones(rows, prefix.length, dtype=torch.long), tail_mask], dim=1).to(device)
    processors = LogitsProcessorList() if decoding.greedy else LogitsProcessorList(
        [SeededGumbelSampler(decoding, seeds, n)])
    cache = _call_cache(model, prefix, rows, ids.shape[1] + max_new_tokens)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         logits_processor=processors, disable_compile=True, **{cache_keyword(model): cache},
                         **generate_kwargs)
    new: torch.Tensor = out[:, ids.shape[1]:]
    return new
