"""The registry of augmentation strategies: name -> :class:`Strategy` (a new method is one line here).

The paper's two augmentation modes and the rival knowledge-injection methods are the same kind of thing:
each turns a family's training documents into extra finetuning text, run by ``augment.run_augment`` and
compared at a matched token budget by ``icl-gen reproduce`` (``budget.match_budget``).
"""

from __future__ import annotations

from icl_generalization.core.errors import UserError
from icl_generalization.training.strategies.base import (
    AugmentConfig,
    AugmentInput,
    Output,
    Started,
    Strategy,
    prompt_template,
)
from icl_generalization.training.strategies.model_free import REPEAT, REVERSE_ENTITY, REVERSE_WORD
from icl_generalization.training.strategies.prompted import ENTIGRAPH, GLOBAL, LOCAL, PARAPHRASE, SELF_QA

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (LOCAL, GLOBAL, PARAPHRASE, SELF_QA, ENTIGRAPH, REPEAT,
                                                       REVERSE_WORD, REVERSE_ENTITY)}

__all__ = ["STRATEGIES", "AugmentConfig", "AugmentInput", "Output", "Started", "Strategy", "get_strategy",
           "prompt_template"]


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UserError(f"unknown augmentation strategy {name!r}; choose from {', '.join(STRATEGIES)}") from None
