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

The cached tensors are never written to in place: a packed forward appends to the prefix's own cache
(``DynamicLayer.update`` concatenates into new tensors) and the cache is cut back to the prefix right after, so
one prefix serves any number of batches and calls with one copy of the cache alive. ``generate_from_prefix``
expands a copy of it instead, since ``generate`` keeps the cache it is given.
The prefix keeps every position even for sliding layers (a config-less ``DynamicCache``): the masks decide what
each token sees, and the model's own chunked-prefill masks count positions from the start of the prefix.

Not every architecture takes a packed forward (ALiBi biases computed from a 2D mask, positions derived from the
cache length instead of ``position_ids``, local attention that ignores a 4D mask, layer types with no packed
mask). For those the cached path also runs **unpacked**: each continuation in a forward of its own after the
prefix's cache, with no mask or positions from us, which is what ``generate`` does after a prompt, so the model
builds its own masks and positions. It runs more forwards (one per continuation) but still computes the prefix
once. ``unsupported_reason`` names what rules a model out of both modes, ``packing_unsupported_reason`` what
rules it out of packing, and ``scoring.probe`` proves the chosen mode on each loaded model before it is trusted.

Numerics: a cached pass adds the same terms in a different order than one full pass (chunked prefill, a masked
SDPA kernel instead of the ``is_causal`` one), so fp32 log-likelihoods differ from stock scoring by about 1e-5;
bf16 differs by its own rounding (about 1e-2 on a sum of a few tokens), as does any change of batch shape there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

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
    (logits, attention scores, mask, what the cache grows by); ``None`` means 2 GiB on CPU and half the
    free memory on CUDA. The number of packed tokens is the largest that fits both.
    """

    batch_tokens: int = DEFAULT_BATCH_TOKENS
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.batch_tokens, int) or self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be a positive integer, got {self.batch_tokens!r}")
        if self.memory_mb is not None and (not isinstance(self.memory_mb, int) or self.memory_mb < 1):
            raise ValueError(f"memory_mb must be a positive integer or None, got {self.memory_mb!r}")


class _PlainLayer(Protocol):
    """A ``DynamicLayer`` once it holds tensors (its annotations also allow ``None``)."""

    keys: torch.Tensor
    values: torch.Tensor


@dataclass(frozen=True)
class CachedPrefix:
    """The key/value cache of a prefix (batch size 1) and the logits that predict the token after it.

    ``cache`` is also the working cache of packed forwards: each one appends its tokens, and ``restore`` cuts
    every layer back to the prefix (a view of the same values, which the concatenation copied bit for bit), so
    one copy of the cache is alive at a time and none is made up front.
    """

    token_ids: tuple[int, ...]
    cache: DynamicCache
    last_logits: torch.Tensor  # [vocab]

    @property
    def length(self) -> int:
        return len(self.token_ids)

    @property
    def layers(self) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Each layer's keys and values [1, heads, length, head_dim] (views; never written to in place)."""
        return tuple((layer.keys, layer.values) for layer in self._plain_layers())

    def restore(self) -> None:
        """Drop whatever a forward appended after the prefix."""
        crop_cache(self.cache, self.length)

    def _plain_layers(self) -> Iterator[_PlainLayer]:
        return plain_layers(self.cache)


def plain_layers(cache: DynamicCache) -> Iterator[_PlainLayer]:
    """The layers of a cache ``check_plain_layers`` passed, typed as holding tensors."""
    for layer in cache.layers:
        yield cast(_PlainLayer, layer)


def crop_cache(cache: DynamicCache, length: int) -> None:
    """Cut every layer back to its first ``length`` positions (what ``DynamicLayer.crop`` does, by length): views
    of the same values, which a forward's concatenation copied bit for bit."""
    for layer in plain_layers(cache):
        layer.keys = layer.keys[..., :length, :]
        layer.values = layer.values[..., :length, :]


def check_plain_layers(cache: DynamicCache, length: int) -> None:
    """Refuse a cache that ``crop_cache`` could not cut back: only plain key/value layers can be cut by length;
    anything else (recurrent states, indexer keys) would keep what a packed forward appended."""
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if type(layer) is not DynamicLayer or not isinstance(keys, torch.Tensor) \
                or not isinstance(values, torch.Tensor) or keys.shape[-2] != length:
            raise TypeError(f"cache layer {type(layer).__name__} holds no plain key/value tensors to reuse")


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
    if getattr(model.config, "is_encoder_decoder", False):
        return "encoder-decoder models score continuations in the decoder; there is no shared decoder prefix"
    # Flash-attention models run the cached forwards in SDPA (``scoring.attention.masked_attention``).
    return switch_unsupported_reason(model)


def packing_unsupported_reason(model: Any) -> str | None:
    """Why the config rules ``model`` out of packed forwards (``None``: let ``scoring.probe`` decide); the
    unpacked mode may still serve it."""
    layer_types = getattr(text_config(model), "layer_types", None) or ()
    other = sorted(set(layer_types) - MASKED_LAYER_TYPES)
    if other:
        return f"layer types {other} have no packed mask (only {sorted(MASKED_LAYER_TYPES)})"
    return None


def _accepts_logits_to_keep(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(_base_model(model).forward).parameters


def keeps_indices(model: Any) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` as a tensor of positions (``slice_logits_to_keep``),
    not only as a count of last positions; models with older forwards would misread a tensor."""
    parameter = inspect.signature(_base_model(model).forward).parameters.get("logits_to_keep")
    return parameter is not None and "Tensor" in str(parameter.annotation)


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


def expanded_cache(prefix: CachedPrefix, batch: int = 1) -> DynamicCache:
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
        logits = out.logits[0, -1].clone()
        del out  # the chunk's hidden states and logits go before the next chunk runs
    assert logits is not None
    check_plain_layers(cache, len(token_ids))
    return CachedPrefix(token_ids=tuple(token_ids), cache=cache, last_logits=logits)


def _bytes_per_element(model: Any) -> int:
    return int(next(model.parameters()).element_size())


def memory_budget(model: Any, config: PrefixCacheConfig) -> int:
    if config.memory_mb is not None:
        return config.memory_mb * 2**20
    device = _device(model)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return DEFAULT_CPU_MEMORY_MB * 2**20


@dataclass(frozen=True)
class ModelDims:
    """The sizes of a decoder that memory estimates need (1 where the config lacks a field)."""

    elem: int  # bytes per parameter element (the dtype of activations and the cache)
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    layers: int
    vocab: int
    inter: int

    @classmethod
    def of(cls, model: Any) -> ModelDims:
        cfg = text_config(model)
        heads = config_int(cfg, "num_attention_heads") or 1
        hidden = config_int(cfg, "hidden_size") or 1
        return cls(elem=_bytes_per_element(model), heads=heads,
                   kv_heads=config_int(cfg, "num_key_value_heads") or heads,
                   head_dim=config_int(cfg, "head_dim") or max(1, hidden // heads), hidden=hidden,
                   layers=config_int(cfg, "num_hidden_layers") or 1, vocab=config_int(cfg, "vocab_size") or 1,
                   inter=config_int(cfg, "intermediate_size") or 4 * hidden)

    def kv_bytes(self, tokens: int) -> int:
        """One layer's keys and values of ``tokens`` positions of one row."""
        return 2 * self.kv_heads * self.head_dim * tokens * self.elem


def forward_bytes(model: Any, prefix_length: int, n_tokens: int, rows: int = 1) -> int:
    """An upper estimate of what one packed forward of ``n_tokens`` per row after the prefix allocates, for
    ``rows`` rows (several groups' packs side by side, ``scoring.group_batches``).

    Logits and their log-softmax (fp32; an upper bound, as only the scored rows get them), per-head attention
    scores and probabilities of one layer (the math kernels materialise them), the mask, what the working cache
    grows by (every layer's keys/values of the packed tokens, plus one layer's concatenation in flight, while the
    old tensor is still alive), and a few hidden-state sized activations.
    """
    d = ModelDims.of(model)
    kv_len = prefix_length + n_tokens
    logits = n_tokens * d.vocab * (d.elem + 4 + 4)
    scores = 2 * d.heads * n_tokens * kv_len * 4 + n_tokens * kv_len * 4
    cache_growth = d.kv_bytes(d.layers * n_tokens + kv_len)
    activations = n_tokens * (8 * d.hidden + 3 * d.inter) * 4
    return rows * (logits + scores + cache_growth + activations)


def tokens_per_forward(model: Any, prefix_length: int, config: PrefixCacheConfig, rows: int = 1) -> int:
    """The most tokens per row one forward of ``rows`` rows may pack: ``config.batch_tokens`` over all rows,
    halved until the memory fits."""
    budget = memory_budget(model, config)
    n = max(1, config.batch_tokens // rows)
    while n > 1 and forward_bytes(model, prefix_length, n, rows) > budget:
        n //= 2
    return n


def _as_mask(model: Any, allowed: torch.Tensor) -> torch.Tensor:
    """``allowed`` [batch, queries, keys] as the model's 4D mask [batch, 1, queries, keys]."""
    if model.config._attn_implementation == "sdpa":
        return allowed[:, None]
    # Eager attention adds the mask to the scores: 0 where allowed, the dtype's minimum elsewhere.
    dtype = next(model.parameters()).dtype
    additive = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return additive.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def sliding_window(model: Any) -> int | None:
    """How many positions ``model``'s sliding layers see (``None``: no layer slides)."""
    config = text_config(model)
    window = config_int(config, "sliding_window")
    layer_types = getattr(config, "layer_types", None) or ()
    # Hybrid models name their sliding layers; single-kind ones (Mistral, Starcoder2) slide wherever a window
    # is set, unless the config switches it off (Qwen2's use_sliding_window).
    sliding = "sliding_attention" in layer_types if layer_types else getattr(config, "use_sliding_window", True)
    return window if sliding else None


def layer_masks(model: Any, allowed: torch.Tensor, query_pos: torch.Tensor,
                key_pos: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
    """The 4D mask(s) of one forward from what each query may see, ``allowed`` [batch, queries, keys], and the
    positions of queries [batch, queries] and keys [batch, keys]: one mask, or one per layer type.

    A sliding layer also sees only the ``sliding_window`` positions up to and including its own (transformers'
    ``sliding_window_overlay``: ``kv > q - window``).
    """
    window = sliding_window(model)
    if window is None:
        return _as_mask(model, allowed)
    windowed = _as_mask(model, allowed & (query_pos[:, :, None] - key_pos[:, None, :] < window))
    if not (getattr(text_config(model), "layer_types", None) or ()):
        return windowed
    return {"full_attention": _as_mask(model, allowed), "sliding_attention": windowed}


def tree_attention(tree: PackedTree, device: torch.device) -> torch.Tensor:
    """Which packed tokens each packed token sees [n, n]: its ancestors in the trie, itself included."""
    index = torch.arange(len(tree.tokens), device=device)
    end = torch.tensor(tree.end, device=device)
    return (index[None, :] <= index[:, None]) & (index[:, None] < end[None, :])


def packed_masks(model: Any, prefix_length: int, tree: PackedTree,
                 device: torch.device) -> torch.Tensor | dict[str, torch.Tensor]:
    """The attention mask of one packed forward: [1, 1, n, prefix + n], or one per layer type.

    Every packed token sees the prefix and its own ancestors in the trie (itself included): exactly what it
    would see in ``prefix + its continuation``.
    """
    n = len(tree.tokens)
    allowed = torch.cat([torch.ones(n, prefix_length, dtype=torch.bool, device=device),
                         tree_attention(tree, device)], dim=1)
    query_pos = prefix_length + torch.tensor(tree.depth, device=device)
    key_pos = torch.cat([torch.arange(prefix_length, device=device), query_pos])
    return layer_masks(model, allowed[None], query_pos[None], key_pos[None])


@dataclass(frozen=True)
class PackedTree:
    """Continuations packed as a token trie in depth-first order, so a start they share runs once.

    The continuations of an ICL group are question + choice: the choices of one question share the question's
    tokens (and sometimes their own first tokens), so the trie runs each question once, then each choice's own
    tokens. ``depth[k]`` is packed token k's offset after the prefix (its position is prefix + depth) and
    ``end[k]`` the end of its subtree: token j is token k's ancestor-or-self exactly when ``j <= k < end[j]``,
    which is the whole attention pattern inside the pack. ``paths[i]`` lists the packed tokens of continuation i.
    """

    tokens: tuple[int, ...]
    depth: tuple[int, ...]
    end: tuple[int, ...]
    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> PackedTree:
        trie: list[dict[int, int]] = [{}]  # children by token, per node in insertion order; node 0 is the prefix
        raw_paths = [_walk(trie, seq, insert=True)[1] for seq in sequences]
        token = [-1] * len(trie)
        for children in trie:
            for t, child in children.items():
                token[child] = t
        # Pre-order numbering: every subtree becomes one contiguous run of packed tokens.
        order = [0] * len(trie)
        tokens: list[int] = []
        depth: list[int] = []
        end: list[int] = []
        open_nodes: list[int] = []  # packed indices whose subtree has not ended yet, deepest last
        stack = [(child, 0) for child in reversed(trie[0].values())]
        while stack:
            node, d = stack.pop()
            while open_nodes and depth[open_nodes[-1]] >= d:
                end[open_nodes.pop()] = len(tokens)
            order[node] = len(tokens)
            open_nodes.append(len(tokens))
            tokens.append(token[node])
            depth.append(d)
            end.append(-1)
            stack.extend((child, d + 1) for child in reversed(trie[node].values()))
        for k in open_nodes:
            end[k] = len(tokens)
        return cls(tokens=tuple(tokens), depth=tuple(depth), end=tuple(end),
                   paths=tuple(tuple(order[n] for n in path) for path in raw_paths))


def _walk(trie: list[dict[int, int]], seq: Sequence[int], insert: bool) -> tuple[int, list[int]]:
    """Follow ``seq`` down ``trie``: how many of its tokens the trie lacks (added when ``insert``), and its nodes."""
    node = 0
    path: list[int] = []
    for k, t in enumerate(seq):
        child = trie[node].get(t)
        if child is None:
            if not insert:
                return len(seq) - k, path
            child = trie[node][t] = len(trie)
            trie.append({})
        path.append(child)
        node = child
    return 0, path


def plan_batches(inputs: Sequence[Sequence[int]], limit: int) -> list[list[int]]:
    """Consecutive indices whose packed trie holds at most ``limit`` tokens (a longer input runs alone).

    Consecutive, because ``plan_groups`` sorts requests by their context, so a question's choices sit together.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    trie: list[dict[int, int]] = [{}]
    for i, seq in enumerate(inputs):
        if current and len(trie) - 1 + _walk(trie, seq, insert=False)[0] > limit:
            batches.append(current)
            current, trie = [], [{}]
        _walk(trie, seq, insert=True)
        current.append(i)
    if current:
        batches.append(current)
    return batches


def packed_tokens(model: Any, prefix_length: int, continuations: Sequence[Sequence[int]],
                  config: PrefixCacheConfig | None = None, packed: bool = True) -> int:
    """How many tokens ``continuation_logprobs`` feeds the model for these continuations (the tries it packs,
    or every continuation whole when unpacked)."""
    inputs = [list(c[:-1]) for c in continuations]
    if not packed:
        return sum(len(x) for x in inputs)
    limit = tokens_per_forward(model, prefix_length, config or PrefixCacheConfig())
    return sum(len(PackedTree.build([inputs[i] for i in batch]).tokens) for batch in plan_batches(inputs, limit))


def score_rows(logprobs: torch.Tensor, targets: list[int], n_scored: int) -> ScoredContinuation:
    """The scored last ``n_scored`` tokens of ``targets`` from their log-probability rows (the last rows)."""
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
                          softmax_dtype: torch.dtype | None = None,
                          packed: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
    """``(i, rows)`` for every continuation: the log-probability rows [n_rows[i], vocab] over the last
    ``n_rows[i]`` tokens of ``prefix + continuations[i]``, in batches of packed forwards (or, with
    ``packed=False``, one forward per continuation).

    ``continuations[i]`` is every token after the prefix (at least one). The token right after the prefix is
    predicted by the prefix's last logits; the others by a packed forward over ``continuations[i][:-1]``, where
    continuations sharing a start run it once (``PackedTree``) and the output layer runs only on the tokens
    whose rows are asked for. ``softmax_dtype`` is HFLM's: ``None`` keeps the model's dtype, as stock scoring does.
    """
    _check_continuations(continuations, n_rows)
    config = config or PrefixCacheConfig()
    first = F.log_softmax(prefix.last_logits, dim=-1, dtype=softmax_dtype)[None]
    inputs = [list(c[:-1]) for c in continuations]
    if not packed:
        for i, seq in enumerate(inputs):
            rows = _unpacked_logprobs(model, prefix, seq, min(n_rows[i], len(seq)), softmax_dtype) if seq else first
            yield i, torch.cat([first, rows]) if seq and n_rows[i] > len(seq) else rows
            del rows
        return
    for batch in plan_batches(inputs, tokens_per_forward(model, prefix.length, config)):
        tree = PackedTree.build([inputs[i] for i in batch])
        wanted, picks = scored_rows(tree, [n_rows[i] for i in batch])
        logprobs = _packed_logprobs(model, prefix, tree, wanted, softmax_dtype) if wanted else first
        for i, (picked, needs_first) in zip(batch, picks, strict=True):
            rows = logprobs[torch.tensor(picked, dtype=torch.long, device=logprobs.device)]
            yield i, torch.cat([first, rows]) if needs_first else rows
        del logprobs  # before the next forward: one batch's rows alive at a time


def scored_rows(tree: PackedTree, n_rows: Sequence[int]) -> tuple[list[int], list[tuple[list[int], bool]]]:
    """Which packed tokens' logits the continuations of ``tree`` score, and for each continuation its rows among
    them (in order) and whether its first scored token is the one right after the prefix (predicted by the
    prefix's last logits, not by a packed token).

    A continuation scoring its last k tokens needs the logits of its last k - 1 inputs, or all of them.
    """
    wanted = sorted({k for path, n in zip(tree.paths, n_rows, strict=True)
                     for k in path[len(path) - min(n, len(path)):]})
    row_of = {k: r for r, k in enumerate(wanted)}
    picks = [([row_of[k] for k in path[len(path) - min(n, len(path)):]], n > len(path))
             for path, n in zip(tree.paths, n_rows, strict=True)]
    return wanted, picks


def _packed_logprobs(model: Any, prefix: CachedPrefix, tree: PackedTree, wanted: list[int],
                     softmax_dtype: torch.dtype | None) -> torch.Tensor:
    """One forward of the packed tree after the prefix's cache; the log-softmax rows of the ``wanted`` tokens.

    The prefix's own cache is the working copy: the model appends the packed keys/values to it (one
    concatenation per layer, its only copy), and it is cut back to the prefix afterwards, whatever happened.
    """
    device = _device(model)
    ids = torch.tensor([tree.tokens], dtype=torch.long, device=device)
    positions = prefix.length + torch.tensor([tree.depth], dtype=torch.long, device=device)
    mask = packed_masks(model, prefix.length, tree, device)
    keep = torch.tensor(wanted, dtype=torch.long, device=device)
    # Models whose forward takes positions to keep run the output layer (with any scaling or soft-capping the
    # model applies after it) on those rows only; the others compute every row and the wanted ones are taken.
    kwargs = {"logits_to_keep": keep} if keeps_indices(model) else {}
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    **{cache_keyword(model): prefix.cache}, **kwargs)
        logits = out.logits[0] if kwargs else out.logits[0, keep]
        del out  # the hidden states and any full logits go now, not after the next forward
        return F.log_softmax(logits, dim=-1, dtype=softmax_dtype)
    finally:
        prefix.restore()


def _unpacked_logprobs(model: Any, prefix: CachedPrefix, ids: list[int], n_rows: int,
                       softmax_dtype: torch.dtype | None) -> torch.Tensor:
    """One continuation's forward after the prefix's cache, as ``generate`` runs a prompt's next chunk: the model
    builds its own mask and positions from the cache's length. The log-softmax rows of its last ``n_rows`` tokens.
    """
    tensor = torch.tensor([ids], dtype=torch.long, device=_device(model))
    keep = {"logits_to_keep": n_rows} if _accepts_logits_to_keep(model) else {}
    try:
        out = model(input_ids=tensor, use_cache=True, **{cache_keyword(model): prefix.cache}, **keep)
        logits = out.logits[0, -n_rows:]
        del out
        return F.log_softmax(logits, dim=-1, dtype=softmax_dtype)
    finally:
        prefix.restore()


def score_continuations(model: Any, prefix: CachedPrefix, continuations: Sequence[Sequence[int]],
                        n_scored: Sequence[int], config: PrefixCacheConfig | None = None,
                        softmax_dtype: torch.dtype | None = None, packed: bool = True) -> list[ScoredContinuation]:
    """Log-probabilities of the last ``n_scored[i]`` tokens of ``prefix + continuations[i]``, for every i.

    See ``continuation_logprobs`` for the arguments.
    """
    _check_continuations(continuations, n_scored)
    results: list[ScoredContinuation | None] = [None] * len(continuations)
    for i, rows in continuation_logprobs(model, prefix, continuations, n_scored, config, softmax_dtype, packed):
        results[i] = score_rows(rows, list(continuations[i]), n_scored[i])
    return [r for r in results if r is not None]


@torch.no_grad()
def generate_from_prefix(model: Any, prefix: CachedPrefix, suffix_ids: Sequence[int],
                         generate: Callable[..., torch.Tensor] | None = None,
                         **generate_kwargs: Any) -> torch.Tensor:
    """Generate after ``prefix + suffix_ids`` without recomputing the prefix; returns only the new tokens.

    ``generate_kwargs`` go to ``model.generate`` (``max_new_tokens``, ``do_sample``, ``temperature``,
    ``num_return_sequences``...). The result has one row per returned sequence. ``generate`` replaces
    ``model.generate`` with a caller's wrapper of it (taking ``input_ids``, ``attention_mask``, the cache and
    ``generate_kwargs`` by keyword, and returning prompt + new tokens), e.g. HFLM's ``_model_generate`` with its
    stop sequences and sampling defaults.
    """
    if not suffix_ids:
        raise ValueError("generate_from_prefix needs at least one suffix token (the prefix's cache is complete)")
    # generate() repeats the prompt for num_return_sequences but not a cache handed to it, so the rows are made
    # here: the prompt repeated and the cache expanded to match, then one sequence per row.
    rows = int(generate_kwargs.pop("num_return_sequences", 1))
    device = _device(model)
    ids = torch.tensor([[*prefix.token_ids, *suffix_ids]] * rows, dtype=torch.long, device=device)
    # generate() took the cache under the same name as forward() in every release since the rename.
    out = (generate or model.generate)(input_ids=ids, attention_mask=torch.ones_like(ids),
                                       **{cache_keyword(model): expanded_cache(prefix, rows)}, **generate_kwargs)
    new_tokens: torch.Tensor = out[:, ids.shape[1]:]
    return new_tokens
