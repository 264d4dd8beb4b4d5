"""Run the cached path's forwards in an attention implementation that applies a caller's 4D mask.

The packed forward hands the model a block-causal mask; transformers' eager and SDPA attention apply a 4D mask as
given, while flash-attention kernels (``flash_attention_2``/``3``/``4``, hub kernels such as
``kernels-community/flash-attn2``), flex attention and paged attention take none or another format. A model loaded
with one of those is switched to SDPA (eager where the model has no SDPA) for the cached forwards only, with
transformers' own ``set_attn_implementation``, and switched back afterwards: the stock path keeps its kernel.

The two kernels compute the same attention; they differ by rounding only (on a GPU in bf16, a few thousandths of a
nat on a log-likelihood, well inside the probe's half-precision tolerance).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# Attention implementations known to apply a caller's 4D mask as given.
MASKED_ATTENTION = ("sdpa", "eager")


def base_model(model: Any) -> Any:
    """The model that really runs: PEFT wraps it and forwards ``**kwargs`` and attributes."""
    return model.getbase_model() if hasattr(model, "get_base_model") else model


def implementation(model: Any) -> Any:
    """The attention implementation ``model`` runs in now (its config's)."""
    return getattr(model.config, "_attn_implementation", None)


def masked_target(model: Any) -> str:
    """What the cached forwards of ``model`` run in: its own implementation if that takes a 4D mask, else SDPA
    where the model supports it, else eager."""
    impl = implementation(model)
    if impl in MASKED_ATTENTION:
        return str(impl)
    return "sdpa" if getattr(base_model(model), "_supports_sdpa", False) else "eager"


def switch_unsupported_reason(model: Any) -> str | None:
    """Why ``model``'s attention cannot run the packed mask (``None``: it can, as is or switched)."""
    impl = implementation(model)
    if impl in MASKED_ATTENTION:
        return None
    base = base_model(model)
    can_switch = getattr(base, "_can_set_attn_implementation", None)
    if not callable(can_switch) or not hasattr(base, "set_attn_implementation") or not can_switch():
        return (f"attention implementation {impl!r} does not take a custom 4D mask (need one of {MASKED_ATTENTION}) "
                "and the model cannot switch implementations at run time")
    return None


def _configs(model: Any) -> list[Any]:
    """Every config whose attention implementation a switch may change: the model's, each sub-model's and every
    nested sub-config (composite models keep one per part)."""
    found: dict[int, Any] = {}
    pending = [model.config] + [m.config for m in model.modules() if hasattr(m, "config")]
    while pending:
        config = pending.pop()
        if id(config) in found or not hasattr(config, "_attn_implementation_internal"):
            continue
        found[id(config)] = config
        pending.extend(c for key in getattr(config, "sub_configs", {}) if (c := getattr(config, key, None)) is not None)
    return list(found.values())


@contextlib.contextmanager
def masked_attention(model: Any) -> Iterator[None]:
    """Within the block, ``model`` runs an attention implementation that applies 4D masks (see the module doc).

    Switching is transformers' own ``set_attn_implementation``; switching back restores each config's recorded
    value directly, because going back through the public setter re-checks the original kernel (imports
    flash-attn, or fetches a hub kernel again) for a value the model already ran with.
    """
    if implementation(model) in MASKED_ATTENTION:
        yield
        return
    base = base_model(model)
    saved = [(config, config._attn_implementation_internal) for config in _configs(base)]
    try:
        base.set_attn_implementation(masked_target(model))
        if implementation(model) not in MASKED_ATTENTION:  # set_attn_implementation only warns when it cannot
            raise RuntimeError(f"could not switch attention implementation {implementation(model)!r} to "
                               f"{masked_target(model)!r} for the packed forward")
        yield
    finally:
        for config, value in saved:
            config._attn_implementation_internal = value


__all__ = ["MASKED_ATTENTION", "base_model", "masked_attention", "masked_target", "switch_unsupported_reason"]
