"""Llama-architecture models of real sizes with random weights, for throughput without a download.

Speed and memory do not depend on trained weights, so a 1B- or 7B-class model can be measured anywhere from its
config alone. The vocabulary is the tokenizer's (the benchmark tokenizes the task with the default model's), the
window 8,192 tokens like the default model's. Needs only torch and transformers (``scripts/gpu_check.py``
loads this file on a machine without the package's other dependencies).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# Shapes of well-known Llama-architecture models (attention, MLP and layer counts; the vocabulary differs).
RANDOM_CONFIGS: dict[str, dict[str, Any]] = {
    # For tests: milliseconds per forward.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    # Llama 3.2 1B: about 1.07B parameters with a 49,152-token vocabulary.
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=True),
    # Llama 2 7B / Llama 3 8B body (grouped-query attention as in Llama 3): about 6.7B parameters here.
    "llama-7b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8),
}
WINDOW = 8192


def random_model(name: str, vocab_size: int, dtype: torch.dtype, device: str | torch.device,
                 special_ids: dict[str, int | None] | None = None) -> Any:
    """The named config with random weights, built directly on ``device`` in ``dtype``, in eval mode (SDPA)."""
    if name not in RANDOM_CONFIGS:
        raise ValueError(f"unknown random config {name!r}; known: {', '.join(RANDOM_CONFIGS)}")
    fields: dict[str, Any] = {**RANDOM_CONFIGS[name], **(special_ids or {})}
    config = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=WINDOW, **fields)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    return model.eval()
