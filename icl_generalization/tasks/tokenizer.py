"""The tokenizer and context window that size in-context prompts: the evaluated model's own.

HFLM left-truncates an over-long prompt with only a log line, so a context sized with any other tokenizer
could silently lose its evidence.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from icl_generalization.core.digest import sha256_of
from icl_generalization.core.errors import UserError
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.weights.default_model import resolve_model

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def model_name_for_tokenizer(options: TaskOptions) -> str | None:
    """Which model's tokenizer sizes the prompts: explicit ``tokenizer``, else ``pretrained``, else the base
    named by ``checkpoint=`` / ``peft=`` (an adapter keeps its base's tokenizer), else the default model."""
    name = options.tokenizer or options.pretrained
    adapter = options.checkpoint or options.peft
    if not name and adapter:
        from icl_generalization.weights.loading import checkpoint_base_name

        name = checkpoint_base_name(adapter)
    return name or None


def model_window(options: TaskOptions) -> int:
    """The context window of the model the options name (``max_length`` overrides the config)."""
    if options.max_length:
        return options.max_length
    from transformers import AutoConfig

    resolved = resolve_model(model_name_for_tokenizer(options))
    config = AutoConfig.from_pretrained(resolved)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UserError(f"cannot tell the context window of {resolved}; pass --model_args max_length=N")


@lru_cache(maxsize=4)
def load_tokenizer(resolved: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(resolved)
    return tokenizer


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """What the task cache keys on: the whole tokenizer definition where there is one, else name and size."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else f"{tokenizer.name_or_path}:{len(tokenizer)}"
    return sha256_of(str(blob))[:16]
