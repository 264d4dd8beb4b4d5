"""Score several prefix groups side by side: one batched forward per stage instead of one forward per group.

A group (one shared context and the requests after it) with a short context and a few questions makes small
forwards: a few hundred prefix tokens, then one packed trie of a few hundred more. On a GPU such a forward
leaves most of the device idle, and a task of many short shards runs one after another. Here a **wave** of
groups runs as rows of one batch:

- the prefixes, right-padded to the wave's longest, run in batched chunks; each row attends causally to its own
  tokens, and a padding position (after a row's prefix) sees itself as well, so no attention row is empty;
- each group's packed trie (``prefix_cache.PackedTree``) is one row of the next forward, padded to the longest;
  its tokens see their own row's prefix (never its padding) and their trie ancestors, at position
  ``prefix length + depth``, exactly as in a group's own packed forward;
- the output layer runs only on the packed tokens some row scores.

Only groups whose whole trie fits one packed forward join a wave (the many-short-shards case this is for); a
group with more continuations than that keeps its own sequence of packed forwards, which are already large.
Waves join groups of similar prefix length (sorted, no row padded by more than a quarter of the longest), and
the wave's cache, padding included, counts against the forward's memory budget.

On CPU a forward of a few hundred tokens already keeps the cores busy, so batching saves little there; the
cached model class turns it on by default only on CUDA (``prefix_batch_groups``). ``scoring.probe`` proves it on
each model like the other modes, with two groups of different prefix lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from icl_generalization.scoring.prefix_cache import (
    ModelDims,
    PackedTree,
    PrefixCacheConfig,
    ScoredContinuation,
    cache_keyword,
    check_plain_layers,
    crop_cache,
    forward_bytes,
    input_device,
    keeps_indices,
    layer_masks,
    memory_budget,
    score_rows,
    scored_rows,
    tokens_per_forward,
    tree_attention,
)

# Padding a row of a wave may carry, as a share of the wave's longest prefix.
MAX_PADDING = 0.25


@dataclass(frozen=True)
class GroupWork:
    """One group's scoring: its shared prefix, every continuation after it, and how many last tokens each scores."""

    prefix: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    n_scored: tuple[int, ...]

    def tree(self) -> PackedTree:
        return PackedTree.build([c[:-1] for c in self.continuations])

    @property
    def shape(self) -> tuple[int, int]:
        """What ``plan_waves`` needs: the prefix length and the packed trie's size."""
        return len(self.prefix), len(self.tree().tokens)


def plan_waves(model: Any, shapes: Sequence[tuple[int, int]], max_groups: int,
               config: PrefixCacheConfig) -> tuple[list[list[int]], list[int]]:
    """Waves of group indices to score together, and the groups left to score alone.

    ``shapes[g]`` is group g's prefix length and the size of its packed trie (``GroupWork.shape``). A group joins
    a wave only if its trie fits one packed forward; waves take up to ``max_groups`` groups of similar prefix
    length (longest first), while no row is padded by more than ``MAX_PADDING`` of the longest, the wave's
    tokens stay within ``config.batch_tokens`` per forward, and its cache plus its packed forward fit the memory
    budget together.
    """
    if max_groups < 2 or not keeps_indices(model):  # each row keeps logits at its own positions
        return [], list(range(len(shapes)))
    alone: list[int] = []
    candidates: list[tuple[int, int, int]] = []  # (prefix length, trie size, group index)
    for g, (length, size) in enumerate(shapes):
        if size > tokens_per_forward(model, length, config):
            alone.append(g)
        else:
            candidates.append((length, size, g))
    candidates.sort(reverse=True)
    waves: list[list[int]] = []
    wave: list[tuple[int, int, int]] = []
    for candidate in candidates:
        if wave and _fits(model, [*wave, candidate], max_groups, config):
            wave.append(candidate)
            continue
        if wave:
            waves.append([g for _, _, g in wave])
        wave = [candidate]
    if wave:
        waves.append([g for _, _, g in wave])
    alone.extend(w[0] for w in waves if len(w) == 1)
    return [w for w in waves if len(w) > 1], sorted(alone)


def _fits(model: Any, wave: Sequence[tuple[int, int, int]], max_groups: int, config: PrefixCacheConfig) -> bool:
    rows = len(wave)
    width = max(length for length, _, _ in wave)
    shortest = min(length for length, _, _ in wave)
    packed = max(size for _, size, _ in wave)
    if rows > max_groups or width - shortest > MAX_PADDING * width or rows * packed > config.batch_tokens:
        return False
    dims = ModelDims.of(model)
    cache = rows * dims.kv_bytes(dims.layers * width)  # the wave's prefixes, padding included
    # Every prefill chunk is smaller than the packed forward's reach (it attends to no more than width tokens),
    # so the packed forward, rows x packed tokens after the whole width, is the peak on top of the cache.
    return cache + forward_bytes(model, width, packed, rows) <= memory_budget(model, config)


@dataclass(frozen=True)
class _WavePrefix:
    cache: DynamicCache  # [rows, heads, width, head_dim] per layer
    lengths: tuple[int, ...]  # each row's real prefix length
    last_logits: torch.Tensor  # [rows, vocab]: the logits after each row's last real token

    @property
    def width(self) -> int:
        return max(self.lengths)

    def restore(self) -> None:
        crop_cache(self.cache, self.width)


def _prefill(model: Any, prefixes: Sequence[Sequence[int]], config: PrefixCacheConfig) -> _WavePrefix:
    """Run right-padded prefixes in batched chunks and keep the cache and each row's last real logits."""
    device = input_device(model)
    lengths = torch.tensor([len(p) for p in prefixes], device=device)
    width = int(lengths.max())
    # The padding token is the row's own first token: any id would do, as no real token ever sees it.
    ids = torch.tensor([[*p, *[p[0]] * (width - len(p))] for p in prefixes], dtype=torch.long, device=device)
    rows = len(prefixes)
    cache = DynamicCache()
    keyword = cache_keyword(model)
    last = torch.empty(0)
    step = tokens_per_forward(model, width, config, rows)
    positions = torch.arange(width, device=device)
    for start in range(0, width, step):
        query = positions[start:start + step]
        key = positions[:start + len(query)]
        causal = key[None, :] <= query[:, None]
        own = causal[None] & (key[None, None, :] < lengths[:, None, None])
        allowed = own | (key[None, None, :] == query[None, :, None])  # a padding query sees itself
        mask = layer_masks(model, allowed, query.expand(rows, -1), key.expand(rows, -1))
        # The chunk positions where some row's prefix ends: the only logits kept.
        ends = (lengths - 1 - start).clamp(min=0)
        here = ((lengths - 1 >= start) & (lengths - 1 < start + len(query))).nonzero().flatten()
        keep = torch.unique(ends[here]) if len(here) else torch.zeros(1, dtype=torch.long, device=device)
        out = model(input_ids=ids[:, start:start + len(query)], attention_mask=mask,
                    position_ids=query.expand(rows, -1), use_cache=True, **{keyword: cache}, logits_to_keep=keep)
        returned = out.get(keyword)
        cache = returned if returned is not None else cache
        if len(here):
            column = torch.searchsorted(keep, ends[here])
            chunk_last = out.logits[here, column]
            if last.numel() == 0:
                last = torch.zeros(rows, chunk_last.shape[-1], dtype=chunk_last.dtype, device=device)
            last[here] = chunk_last
        del out
    check_plain_layers(cache, width)
    return _WavePrefix(cache=cache, lengths=tuple(len(p) for p in prefixes), last_logits=last)


@torch.no_grad()
def wave_logprobs(model: Any, works: Sequence[GroupWork], config: PrefixCacheConfig,
                  softmax_dtype: torch.dtype | None = None) -> list[list[torch.Tensor]]:
    """The log-probability rows [n_scored, vocab] of every continuation of every group in ``works``, from one
    batched prefill and one packed forward (each group's trie must fit one; ``plan_waves`` sees to it)."""
    device = input_device(model)
    prefix = _prefill(model, [w.prefix for w in works], config)
    first = F.log_softmax(prefix.last_logits, dim=-1, dtype=softmax_dtype)
    trees = [w.tree() for w in works]
    plans = [scored_rows(tree, w.n_scored) for tree, w in zip(trees, works, strict=True)]
    try:
        logprobs = _packed_wave(model, prefix, trees, [wanted for wanted, _ in plans], softmax_dtype, device)
    finally:
        prefix.restore()
    results: list[list[torch.Tensor]] = []
    for b, (_, picks) in enumerate(plans):
        group = []
        for picked, needs_first in picks:
            rows = logprobs[b][picked] if picked else first[b, :0]
            group.append(torch.cat([first[b:b + 1], rows]) if needs_first else rows)
        results.append(group)
    return results


def score_wave(model: Any, works: Sequence[GroupWork], config: PrefixCacheConfig,
               softmax_dtype: torch.dtype | None = None) -> list[list[ScoredContinuation]]:
    """Every continuation of every group in ``works`` scored in one wave, per group in its continuations' order,
    as ``prefix_cache.score_continuations`` scores them one group at a time."""
    return [[score_rows(rows, list(c), n) for rows, c, n in zip(group, work.continuations, work.n_scored, strict=True)]
            for group, work in zip(wave_logprobs(model, works, config, softmax_dtype), works, strict=True)]


def _packed_wave(model: Any, prefix: _WavePrefix, trees: Sequence[PackedTree], wanted: Sequence[list[int]],
                 softmax_dtype: torch.dtype | None, device: torch.device) -> list[torch.Tensor]:
    """One forward of every group's trie as a row after its prefix; each row's log-softmax of its wanted tokens."""
    rows, width = len(trees), prefix.width
    n = max(len(t.tokens) for t in trees)
    if n == 0:  # every continuation is one token: the prefixes' last logits score them all
        return [torch.empty(0) for _ in trees]
    ids = torch.zeros(rows, n, dtype=torch.long, device=device)
    query_pos = torch.zeros(rows, n, dtype=torch.long, device=device)
    allowed = torch.zeros(rows, n, width + n, dtype=torch.bool, device=device)
    for b, (tree, length) in enumerate(zip(trees, prefix.lengths, strict=True)):
        k = len(tree.tokens)
        ids[b, :k] = torch.tensor(tree.tokens, dtype=torch.long, device=device)
        query_pos[b] = length
        query_pos[b, :k] += torch.tensor(tree.depth, dtype=torch.long, device=device)
        allowed[b, :k, :length] = True
        allowed[b, :k, width:width + k] = tree_attention(tree, device)
        padding = torch.arange(k, n, device=device)
        allowed[b, padding, width + padding] = True  # a padding token sees itself only
    key_pos = torch.cat([torch.arange(width, device=device).expand(rows, -1), query_pos], dim=1)
    mask = layer_masks(model, allowed, query_pos, key_pos)
    keep = torch.tensor(sorted({k for w in wanted for k in w}), dtype=torch.long, device=device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=query_pos, use_cache=True,
                **{cache_keyword(model): prefix.cache}, logits_to_keep=keep)
    logits = out.logits
    del out
    result = []
    for b, w in enumerate(wanted):
        columns = torch.searchsorted(keep, torch.tensor(w, dtype=torch.long, device=device))
        result.append(F.log_softmax(logits[b, columns], dim=-1, dtype=softmax_dtype))
    return result


__all__ = ["GroupWork", "plan_waves", "score_wave", "wave_logprobs"]
