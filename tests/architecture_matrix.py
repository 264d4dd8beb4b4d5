"""Every causal-LM architecture of the installed transformers, built tiny, through the prefix-cache probe.

For each architecture (and, where its config has an attention window, a variant whose window is shorter than the
probe's prefix) the outcome is one of: ``exact`` (the probe trusted the cached path, and an independent check on
other tokens agrees with plain forwards, in every mode the probe trusted: packed or unpacked, and contexts
batched in one forward where it trusted that), ``fallback`` (the probe refused it, with a reason), or ``skipped`` (it
does not build offline at tiny sizes). ``test_architectures.py`` asserts over it; run this file to print the
summary table recorded in docs/performance.md::

    PYTHONPATH=$PWD python tests/architecture_matrix.py
"""

from __future__ import annotations

import random
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from icl_generalization.scoring.group_batches import GroupWork, wave_logprobs
from icl_generalization.scoring.prefix_cache import PrefixCacheConfig, compute_prefix, continuation_logprobs
from icl_generalization.scoring.probe import check_cached_path

VOCAB = 128
MAX_LENGTH = 512
WINDOW = 16  # the short-window variant: far shorter than the 300-token probe prefix
MAX_PARAMETERS = 5_000_000
# Tiny sizes under every name the configs use (attribute maps make most names aliases of one another).
TINY = {
    "vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 64, "head_dim": 8, "max_position_embeddings": 1024,
    "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": 64, "n_positions": 1024, "n_ctx": 1024, "d_model": 32,
    "n_layers": 2, "n_heads": 4, "num_layers": 2, "ffn_dim": 64, "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32, "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4,
    "num_experts_per_tok": 2, "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
    "v_head_dim": 8, "decoder_layers": 2, "decoder_attention_heads": 4, "decoder_ffn_dim": 64,
    "max_seq_len": 1024, "seq_length": 1024, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    "rotary_dim": 4, "n_group": 1, "topk_group": 1,
}
WINDOW_FIELDS = ("sliding_window", "window_size")
# Architectures whose configs tie a list to the layer count, or whose interesting variant is not the default.
EXTRA = {"gpt_neo": {"attention_types": [[["global", "local"], 1]]}}
VARIANTS = {"falcon": ("alibi", {"alibi": True})}


@dataclass(frozen=True)
class Outcome:
    architecture: str
    variant: str  # "default" or f"window {WINDOW}"
    status: str  # "exact" | "fallback" | "skipped"
    detail: str
    attention: bool  # the config declares attention heads (recurrent-only models do not)
    seconds: float = 0.0


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _known_fields(model_type: str) -> set[str]:
    default = CONFIG_MAPPING[model_type]()
    return set(default.to_dict()) | set(getattr(default, "attribute_map", {}))


def tiny_config(model_type: str, window: int | None, extra: dict[str, Any] | None = None) -> Any:
    """The architecture's default config with every size it knows made tiny (and its window set, if asked)."""
    known = _known_fields(model_type)
    kwargs: dict[str, Any] = {k: v for k, v in TINY.items() if k in known}
    kwargs.update(EXTRA.get(model_type, {}), **(extra or {}))
    if window is not None:
        kwargs.update({k: window for k in WINDOW_FIELDS if k in known})
        if "use_sliding_window" in known:
            kwargs["use_sliding_window"] = True
    if "is_decoder" in known:
        kwargs["is_decoder"] = True  # encoder families (BERT...) act as causal LMs only as decoders
    return CONFIG_MAPPING[model_type](**kwargs)


def has_window(model_type: str) -> bool:
    return bool(_known_fields(model_type) & set(WINDOW_FIELDS))


def _build_once(model_type: str, window: int | None, extra: dict[str, Any]) -> torch.nn.Module:
    config = tiny_config(model_type, window, extra)
    with torch.device("meta"):  # count first: a config that ignored the tiny sizes must not allocate gigabytes
        meta = AutoModelForCausalLM.from_config(config)
    size = sum(p.numel() for p in meta.parameters())
    if size > MAX_PARAMETERS:
        raise ValueError(f"{size:,} parameters at the tiny sizes")
    torch.manual_seed(0)
    for impl in ("sdpa", "eager"):
        try:
            model = AutoModelForCausalLM.from_config(config, attn_implementation=impl).eval().float()
            break
        except ValueError:
            if impl == "eager":
                raise
    with torch.no_grad():  # a tiny config the architecture cannot run is unbuildable, not a cached-path failure
        model(input_ids=torch.arange(3, 11)[None], use_cache=False)
    return model


def build(model_type: str, window: int | None, extra: dict[str, Any] | None = None) -> torch.nn.Module:
    """A tiny fp32 model with random weights, SDPA where the architecture supports it, else eager.

    Grouped-query attention first; some families (multi-head latent attention) need as many key/value heads as
    query heads.
    """
    try:
        return _build_once(model_type, window, extra or {})
    except Exception:
        return _build_once(model_type, window, {"num_key_value_heads": TINY["num_attention_heads"], **(extra or {})})


def _reference(model: torch.nn.Module, prefix: list[int], continuation: list[int]) -> torch.Tensor:
    ids = torch.tensor([[*prefix, *continuation[:-1]]])
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prefix) - 1:]
    return torch.log_softmax(logits.float(), dim=-1)


def independent_error(model: torch.nn.Module, seed: int = 1, packed: bool = True) -> tuple[float, bool]:
    """Max |difference| and argmax agreement of the cached path (in the given mode) against plain forwards, on
    tokens the probe never saw: another prefix length, other chunking, longer continuations."""
    rng = random.Random(seed)
    prefix = [rng.randrange(VOCAB) for _ in range(333)]
    continuations = [[rng.randrange(VOCAB) for _ in range(n)] for n in (3, 17, 1, 30, 8)]
    cached = compute_prefix(model, prefix, PrefixCacheConfig(batch_tokens=50))
    rows = dict(continuation_logprobs(model, cached, continuations, [len(c) for c in continuations],
                                      PrefixCacheConfig(batch_tokens=40), torch.float32, packed))
    return _against_plain(model, [(prefix, c, rows[i]) for i, c in enumerate(continuations)])


def independent_wave_error(model: torch.nn.Module, seed: int = 2) -> tuple[float, bool]:
    """The same check for groups of different contexts batched in one wave: three prefixes of other lengths than
    the probe's (rows padded), continuations of other lengths, other chunking."""
    rng = random.Random(seed)
    groups = [([rng.randrange(VOCAB) for _ in range(n)], [[rng.randrange(VOCAB) for _ in range(k)] for k in ks])
              for n, ks in ((333, (3, 17, 1)), (301, (8, 2)), (320, (1, 11)))]
    works = [GroupWork(tuple(p), tuple(tuple(c) for c in cs), tuple(len(c) for c in cs)) for p, cs in groups]
    rows = wave_logprobs(model, works, PrefixCacheConfig(batch_tokens=150), torch.float32)
    return _against_plain(model, [(prefix, c, got) for (prefix, continuations), group in zip(groups, rows, strict=True)
                                  for c, got in zip(continuations, group, strict=True)])


def _against_plain(model: torch.nn.Module,
                   scored: list[tuple[list[int], list[int], torch.Tensor]]) -> tuple[float, bool]:
    """Max |difference| and argmax agreement of cached rows against plain forwards of each prefix + continuation."""
    worst, same = 0.0, True
    for prefix, continuation, rows in scored:
        reference = _reference(model, prefix, continuation)
        worst = max(worst, float((reference - rows).abs().max()))
        same = same and bool((reference.argmax(-1) == rows.argmax(-1)).all())
    return worst, same


def run(model_type: str, window: int | None = None, extra: tuple[str, dict[str, Any]] | None = None) -> Outcome:
    variant = extra[0] if extra else "default" if window is None else f"window {window}"
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attention = any(isinstance(getattr(CONFIG_MAPPING[model_type](), k, None), int)
                            for k in ("num_attention_heads", "n_head", "n_heads"))
            model = build(model_type, window, extra[1] if extra else None)
    except Exception as error:  # unbuildable offline or at tiny sizes: reported, not judged
        return Outcome(model_type, variant, "skipped", _one_line(error), False, time.perf_counter() - start)
    verdict = check_cached_path(model, MAX_LENGTH)
    if verdict.reason is not None:
        return Outcome(model_type, variant, "fallback", verdict.reason, attention, time.perf_counter() - start)
    error, same = independent_error(model, packed=verdict.packed)
    if verdict.batched:  # trusted to batch contexts: that mode must be exact too
        wave_error, wave_same = independent_wave_error(model)
        error, same = max(error, wave_error), same and wave_same
    status = "exact" if error <= 1e-4 and same else "WRONG"  # a trusted model that scores wrong: the one bug
    detail = f"max abs difference {error:.1e}" + ("" if verdict.packed else f", unpacked ({verdict.unpacked_because})")
    if verdict.packed:
        detail += (", contexts batched" if verdict.batched
                   else f", one context per forward ({verdict.unbatched_because})")
    return Outcome(model_type, variant, status, detail, attention, time.perf_counter() - start)


def matrix(model_types: list[str] | None = None) -> list[Outcome]:
    outcomes = []
    for model_type in model_types or sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        outcomes.append(run(model_type, None))
        if outcomes[-1].status == "skipped":
            continue
        if has_window(model_type):
            outcomes.append(run(model_type, WINDOW))
        if model_type in VARIANTS:
            outcomes.append(run(model_type, extra=VARIANTS[model_type]))
    return outcomes


def attention_based(outcomes: list[Outcome]) -> list[Outcome]:
    """The built runs of attention-based models: attention heads declared, and no recurrent, linear or other
    layer type outside plain, sliding and chunked attention: layers that keep state other than keys and values
    (recurrent or linear-attention states, indexer keys, compressed memories) may fall back."""
    return [o for o in outcomes if o.status != "skipped" and o.attention
            and ("have no packed mask" not in o.detail or "chunked_attention" in o.detail)]


def summary(outcomes: list[Outcome]) -> str:
    attention = attention_based(outcomes)
    exact = [o for o in attention if o.status == "exact"]
    lines = ["| architecture | variant | outcome | detail |", "|---|---|---|---|"]
    lines += [f"| {o.architecture} | {o.variant} | {o.status} | {o.detail.replace('|', '/')} |" for o in outcomes]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("exact", "fallback", "skipped", "WRONG")}
    batched = sum(o.status == "exact" and "contexts batched" in o.detail for o in outcomes)
    lines += ["", f"{len(outcomes)} runs: {counts['exact']} exact, {counts['fallback']} fallback, "
              f"{counts['skipped']} skipped (unbuildable offline/tiny), {counts['WRONG']} wrong; "
              f"exact among built attention-based runs: {len(exact)}/{len(attention)} "
              f"({100 * len(exact) / max(1, len(attention)):.0f}%); {batched} exact runs batch contexts"]
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    chosen = sys.argv[1:] or None
    print(summary(matrix(chosen)))
