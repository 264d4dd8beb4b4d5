"""The package's lm-eval model class and its registration.

``ICLGenLM`` is lm-eval's ``HFLM`` with the package's conveniences: ``pretrained`` may be an embedded model
name (default ``smollm2-135m``) and defaults to it, and the device defaults to CUDA only when there is one.
Its log-likelihoods run each long shared context once (``scoring.PrefixCachedHFLM``).
"""

from __future__ import annotations

from typing import Any

import torch

from .default_model import DEFAULT_MODEL, resolve_model
from .scoring import PrefixCachedHFLM

MODEL_NAME = "icl-gen"
# lm-eval hands every --model_args entry to the task loaders as well; these belong to the loaders only
# (see harness.py), so the model accepts and ignores them instead of passing them to from_pretrained.
TASK_ONLY_ARGS = frozenset({"data_seed", "data_config", "data_source", "context_budget", "context_margin",
                            "context_mode", "sweep_lengths"})


class ICLGenLM(PrefixCachedHFLM):
    def __init__(self, pretrained: str | None = None, device: str | None = None, **kwargs: Any) -> None:
        self.model_name = pretrained or DEFAULT_MODEL
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model_kwargs = {k: v for k, v in kwargs.items() if k not in TASK_ONLY_ARGS}
        super().__init__(pretrained=resolve_model(pretrained), device=device, **model_kwargs)


def register() -> None:
    """Register ``icl-gen`` with lm-eval's model registry (idempotent).

    lm-eval fills its registry lazily with its own models on first lookup only while the registry is
    empty, so its models are imported first: registering ours into an empty registry would hide ``hf``.
    """
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import model_registry, register_model

    if MODEL_NAME not in model_registry:
        register_model(MODEL_NAME)(ICLGenLM)
