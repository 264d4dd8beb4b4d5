"""Prove the prefix-cached path on a loaded model before trusting it with an evaluation.

Packed forwards rely on each architecture applying a caller's 4D mask and ``position_ids`` exactly as it would
build them itself. Most do; some do not and fail loudly (BLOOM and Falcon's ALiBi, RWKV's recurrent state), and
some fail **silently** (GPT-Neo's local attention, MPT's ALiBi, decoders that derive positions from the cache
length: wrong log-likelihoods, no error). A config can not tell them apart, so on first use each model scores a
short probe both ways, the cached path against one plain forward of each prefix + continuation, and keeps the
cached path only if every log-probability row agrees within a dtype-appropriate tolerance and picks the same
argmax (a half-precision model is also proved in float32, where small structural errors show). Packed first; where
packing is refused or disagrees, the unpacked mode (one forward per continuation after the cached prefix, the
model's own masks and positions) is proved the same way, and the stock path is left only for models that fail
both. A packed model is also proved batched across contexts (``scoring.group_batches``: two groups of different
prefix lengths as rows of one batch); one that fails that is still trusted packed, one group at a time. The
verdict, with its modes, is kept per model object.

The probe is random token ids (the model's numbers do not need meaningful text to disagree), a prefix longer
than any attention window the config declares (a window shorter than the probe is the only way a windowing error
can show) and continuations of several lengths, chunked and packed the way scoring runs them. It costs one
prefix plus a few full forwards of it, once per loaded model.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from icl_generalization.scoring.attention import masked_attention
from icl_generalization.scoring.group_batches import GroupWork, wave_logprobs
from icl_generalization.scoring.prefix_cache import (
    PrefixCacheConfig,
    compute_prefix,
    config_int,
    continuation_logprobs,
    input_device,
    keeps_indices,
    packing_unsupported_reason,
    text_config,
    unsupported_reason,
)

PROBE_PREFIX = 300
PROBE_CONTINUATIONS = (1, 4, 9, 2, 6)  # token counts: one with nothing to pack, several packed together
SHARED_START = 5  # tokens two extra continuations share with the longest one
PROBE_PADDING = 37  # how much shorter the second prefix of the batched probe is (its row is padded)
# Packed tokens per probe forward: the continuations take several packed forwards from one working cache.
PROBE_PACK = 12
# Config fields that bound how far back some layers look; the probe's prefix reaches past the longest.
WINDOW_FIELDS = ("sliding_window", "window_size", "attention_window", "local_window_size")
WINDOW_MARGIN = 64
# Largest |difference| allowed between the two paths' log-probabilities, by the dtype the model computes in:
# (absolute, relative to |log-probability|). fp32 paths differ by about 1e-5 (summation order). Half precision
# keeps 8 (bf16) or 11 (fp16) bits: on the default model in bf16, the two paths' rows differ by up to 0.47 nats
# (6% of the tail log-probabilities near -30), noise that would hide any structural error. So half-precision
# models are proved in float32 at the strict tolerance first (``check_cached_path``), and the loose half-precision
# tolerances only guard against kernels that fail or produce garbage in that dtype.
EXACT_DTYPES = (torch.float32, torch.float64)
TOLERANCE = {torch.float32: (1e-4, 0.0), torch.float64: (1e-4, 0.0), torch.float16: (0.1, 0.03),
             torch.bfloat16: (0.25, 0.15)}


@dataclass(frozen=True)
class Verdict:
    """Whether a model's cached scores may be trusted; ``reason`` says why not.

    ``packed`` is the mode that was proved; an unpacked verdict keeps in ``unpacked_because`` why packing was not.
    ``batched`` says whether groups of different contexts may share a forward; ``unbatched_because`` why not.
    """

    reason: str | None
    max_error: float = 0.0
    packed: bool = True
    unpacked_because: str | None = None
    batched: bool = False
    unbatched_because: str | None = None

    @property
    def trusted(self) -> bool:
        return self.reason is None


_VERDICTS: weakref.WeakKeyDictionary[Any, Verdict] = weakref.WeakKeyDictionary()


def probe_prefix_length(model: Any, max_length: int) -> int:
    """PROBE_PREFIX tokens, or more where a declared window would otherwise never be exceeded."""
    config = text_config(model)
    windows = [w for name in WINDOW_FIELDS if (w := config_int(config, name)) is not None]
    wanted = max([PROBE_PREFIX] + [w + WINDOW_MARGIN for w in windows])
    return max(1, min(wanted, max_length - max(PROBE_CONTINUATIONS)))


def _probe_tokens(model: Any, max_length: int) -> tuple[list[int], list[list[int]]]:
    vocab = config_int(text_config(model), "vocab_size") or 0
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if isinstance(embeddings, torch.nn.Embedding):
        vocab = min(vocab, embeddings.num_embeddings) if vocab else embeddings.num_embeddings
    # Special ids left out: a pad id in a plain forward makes transformers log a padding warning.
    config = text_config(model)
    special = {getattr(config, name, None) for name in ("pad_token_id", "bos_token_id", "eos_token_id")}
    ids = [i for i in range(vocab) if i not in special] or list(range(vocab))
    rng = random.Random(0)  # the same probe for every model and run
    prefix = [rng.choice(ids) for _ in range(probe_prefix_length(model, max_length))]
    # One pad id mid-prefix: RoBERTa-style embeddings number positions by counting non-pad tokens, which a cache
    # cannot continue, and a context may hold that id. Mid-prefix, where the padding warning does not look.
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, int) and 0 <= pad < vocab and len(prefix) > 2:
        prefix[len(prefix) // 2] = pad
    continuations = [[rng.choice(ids) for _ in range(n)] for n in PROBE_CONTINUATIONS]
    # Two more that branch off the 9-token one, as the choices of one question do: the packed trie runs the
    # shared start once and both branches attend to it.
    shared = continuations[PROBE_CONTINUATIONS.index(max(PROBE_CONTINUATIONS))][:SHARED_START]
    return prefix, continuations + [shared + [rng.choice(ids) for _ in range(n)] for n in (1, 3)]


def _reference_rows(model: Any, prefix: Sequence[int], continuation: Sequence[int]) -> torch.Tensor:
    """Stock scoring's rows: one plain forward, no cache, the positions that predict the continuation."""
    device = input_device(model)
    ids = torch.tensor([[*prefix, *continuation[:-1]]], dtype=torch.long, device=device)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prefix) - 1:]
    return F.log_softmax(logits, dim=-1, dtype=torch.float32)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def _compare(reference: torch.Tensor, cached: torch.Tensor, tolerance: tuple[float, float]) -> tuple[float, bool]:
    """Max |difference| of two [n, vocab] log-probability blocks, and whether they agree within ``tolerance``.

    Equal entries count as no difference (so -inf against -inf is 0, not NaN). Argmaxes must agree, except
    where the reference's best two choices are themselves within the absolute tolerance of each other.
    """
    absolute, relative = tolerance
    difference = torch.where(reference == cached, 0.0, (reference - cached).abs())
    within = bool((difference <= absolute + relative * reference.abs()).all())  # False on NaN
    clear = torch.ones(reference.shape[0], dtype=torch.bool, device=reference.device)
    if reference.shape[-1] > 1:
        best_two = reference.topk(2, dim=-1).values
        clear = best_two[:, 0] - best_two[:, 1] > absolute
    same = bool((reference.argmax(-1) == cached.argmax(-1))[clear].all())
    return float(difference.max()), within and same


def _probe_once(model: Any, prefix_ids: list[int], continuations: list[list[int]], prefill: PrefixCacheConfig,
                pack: PrefixCacheConfig, dtype: torch.dtype, packed: bool) -> Verdict:
    try:
        references = [_reference_rows(model, prefix_ids, c) for c in continuations]
    except Exception as error:  # the stock path will meet the same error and report it
        return Verdict(f"a plain forward of the probe failed ({_one_line(error)})")
    try:
        prefix = compute_prefix(model, prefix_ids, prefill)
        cached = dict(continuation_logprobs(model, prefix, continuations, [len(c) for c in continuations],
                                            pack, torch.float32, packed))
    except Exception as error:  # any failure of the cached path means the stock path
        return Verdict(f"the cached path failed on a probe ({_one_line(error)})")
    return _judge(references, [cached[i] for i in range(len(continuations))], dtype, len(prefix_ids), packed)


def _probe_wave(model: Any, prefix_ids: list[int], continuations: list[list[int]], prefill: PrefixCacheConfig,
                dtype: torch.dtype) -> Verdict:
    """Two groups as rows of one batch (``score_wave``): the probe's prefix with its first continuations, and a
    shorter prefix (the same tokens reversed, so the rows differ and one is padded) with the rest."""
    short = list(reversed(prefix_ids))[:max(1, len(prefix_ids) - PROBE_PADDING)]
    split = len(continuations) // 2
    groups = [(prefix_ids, continuations[:split]), (short, continuations[split:])]
    try:
        references = [_reference_rows(model, p, c) for p, conts in groups for c in conts]
    except Exception as error:
        return Verdict(f"a plain forward of the probe failed ({_one_line(error)})")
    works = [GroupWork(tuple(p), tuple(tuple(c) for c in conts), tuple(len(c) for c in conts)) for p, conts in groups]
    # Two rows of prefill chunks a third of the prefix long each, as the single-group probe chunks it.
    config = PrefixCacheConfig(batch_tokens=2 * prefill.batch_tokens, memory_mb=prefill.memory_mb)
    try:
        rows = [r for group in wave_logprobs(model, works, config, torch.float32) for r in group]
    except Exception as error:
        return Verdict(f"batching groups of different contexts failed on a probe ({_one_line(error)})")
    return _judge(references, rows, dtype, len(prefix_ids), True)


def _judge(references: Sequence[torch.Tensor], cached: Sequence[torch.Tensor], dtype: torch.dtype,
           prefix_length: int, packed: bool) -> Verdict:
    tolerance = TOLERANCE.get(dtype, TOLERANCE[torch.float32])
    worst, agree = 0.0, True
    for reference, rows in zip(references, cached, strict=True):
        difference, ok = _compare(reference, rows.to(reference.device), tolerance)
        worst, agree = max(worst, difference), agree and ok
    if agree:
        return Verdict(None, worst, packed)
    absolute, relative = tolerance
    allowed = f"{absolute:g}" + (f" + {relative:g} x |log-probability|" if relative else "")
    return Verdict(f"the cached path differs by up to {worst:.3g} nats (or in its argmax) from plain forwards on a "
                   f"{prefix_length}-token probe in {str(dtype).removeprefix('torch.')} (tolerance {allowed})",
                   worst)


def _named_tensors(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()


def _in_float32(model: Any, probe: Callable[[], Verdict]) -> Verdict:
    """Run ``probe`` with the model's floating tensors in float32, then put each back in its own dtype.

    A bf16 or fp16 value survives the round trip exactly, and tensors a model keeps in float32 stay so. A model
    that cannot be upcast (quantized weights, too little free GPU memory) cannot be verified: the stock path.
    """
    if any(not p.is_floating_point() for p in model.parameters()):
        return Verdict("a quantized model cannot be upcast to float32 to verify the cached path")
    if any(p.device.type == "meta" for p in model.parameters()):  # offloaded weights load in their own dtype
        return Verdict("a model with offloaded weights cannot be upcast to float32 to verify the cached path")
    device = input_device(model)
    extra = sum(p.numel() * (4 - p.element_size()) for p in model.parameters() if p.element_size() < 4)
    if device.type == "cuda" and torch.cuda.mem_get_info(device)[0] < 1.25 * extra:
        return Verdict(f"verifying the cached path in float32 needs {extra / 2**30:.1f} GiB more free GPU memory")
    saved = {name: tensor.dtype for name, tensor in _named_tensors(model)}
    try:
        model.float()
        with torch.autocast(device_type=device.type, enabled=False):
            return probe()
    except torch.OutOfMemoryError:
        return Verdict("ran out of memory verifying the cached path in float32")
    finally:
        for name, tensor in _named_tensors(model):
            if tensor.dtype != saved[name]:
                tensor.data = tensor.data.to(saved[name])


def check_cached_path(model: Any, max_length: int, config: PrefixCacheConfig | None = None,
                      dtype: torch.dtype | None = None) -> Verdict:
    """Score the probe both ways on ``model`` (run under the caller's autocast) and say whether they agree.

    ``dtype`` is what the model computes in (its parameters' dtype unless autocast says otherwise). Half
    precision rounds log-probabilities by a few hundredths, which would hide a structural error of a few
    thousandths (GPT-Neo's window, measured 0.003 nats in bf16 against 0.0015 in fp32); so a half-precision
    model is proved in float32 at the strict tolerance first (upcast in place and restored), then in its own
    dtype at that dtype's tolerance, which catches kernels that fail or go wrong only there. ``config`` is the
    scoring's; the probe keeps its memory budget but chunks the prefix in three so chunked prefill is exercised,
    and packs at most ``PROBE_PACK`` tokens per forward so several packed forwards share one working cache.
    """
    static = unsupported_reason(model)
    if static is not None:
        return Verdict(static)
    dtype = dtype or next(model.parameters()).dtype
    prefix_ids, continuations = _probe_tokens(model, max_length)
    memory_mb = config.memory_mb if config else None
    prefill_config = PrefixCacheConfig(batch_tokens=-(-len(prefix_ids) // 3), memory_mb=memory_mb)
    pack_config = PrefixCacheConfig(batch_tokens=PROBE_PACK, memory_mb=memory_mb)

    def prove(probe: Callable[[torch.dtype], Verdict]) -> Verdict:
        if dtype not in EXACT_DTYPES:
            verdict = _in_float32(model, lambda: probe(torch.float32))
            if not verdict.trusted:
                return verdict
        return probe(dtype)

    def mode(packed: bool) -> Callable[[torch.dtype], Verdict]:
        return lambda d: _probe_once(model, prefix_ids, continuations, prefill_config, pack_config, d, packed)

    # Both sides of the probe run in the attention the cached path runs in (SDPA for a flash-attention model):
    # the probe proves the masks and positions; flash kernels take no float32 and no 4D mask.
    try:
        with masked_attention(model):
            refused = packing_unsupported_reason(model)
            packed = Verdict(refused) if refused is not None else prove(mode(packed=True))
            if packed.trusted:
                wave = prove(lambda d: _probe_wave(model, prefix_ids, continuations, prefill_config, d)) \
                    if keeps_indices(model) else Verdict("the model's forward keeps no logits by position")
                return replace(packed, batched=wave.trusted, unbatched_because=wave.reason)
            unpacked = prove(mode(packed=False))
    except Exception as error:  # _probe_once catches its own; what is left is the switch of attention itself
        return Verdict(f"switching the attention implementation for the cached path failed ({_one_line(error)})")
    if unpacked.trusted:
        return replace(unpacked, unpacked_because=packed.reason)
    return Verdict(f"packed: {packed.reason}; unpacked: {unpacked.reason}", max(packed.max_error, unpacked.max_error))


def cached_path_verdict(model: Any, max_length: int, config: PrefixCacheConfig | None = None,
                        dtype: torch.dtype | None = None) -> Verdict:
    """``check_cached_path`` once per model object; later calls return the first verdict."""
    verdict = _VERDICTS.get(model)
    if verdict is None:
        verdict = _VERDICTS[model] = check_cached_path(model, max_length, config, dtype)
    return verdict


def distrust(model: Any, reason: str) -> Verdict:
    """Record that the cached path failed on ``model`` after its probe passed, so it is not tried again."""
    verdict = _VERDICTS[model] = Verdict(reason)
    return verdict


__all__ = ["Verdict", "cached_path_verdict", "check_cached_path", "distrust", "probe_prefix_length"]
