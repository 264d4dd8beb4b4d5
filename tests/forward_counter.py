"""Count what a model is fed: its forward calls and the input tokens of each (a forward pre-hook)."""

from __future__ import annotations

from typing import Any

import torch


def count_forwards(model: torch.nn.Module) -> tuple[dict[str, int], Any]:
    """``(seen, handle)``: ``seen["calls"]`` and ``seen["tokens"]`` grow with every forward until
    ``handle.remove()``."""
    seen = {"calls": 0, "tokens": 0}

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen["calls"] += 1
        seen["tokens"] += int(ids.numel())

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)
