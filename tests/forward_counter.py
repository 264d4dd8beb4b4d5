"""Count what a model is fed: its forward calls and the input tokens of each (a forward pre-hook)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def count_forwards(model: torch.nn.Module) -> Iterator[dict[str, int]]:
    """``seen``: ``seen["calls"]`` and ``seen["tokens"]`` grow with every forward inside the ``with`` block; the
    hook is removed when it ends, also when it raises."""
    seen = {"calls": 0, "tokens": 0}

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen["calls"] += 1
        seen["tokens"] += int(ids.numel())

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()
