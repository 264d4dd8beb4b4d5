"""Presets of ``icl-gen reproduce``: the study's pipeline at a size a machine can afford.

Each preset says, per family, how many steps each finetune takes, how training text is split, and how much is
augmented; the data sizes (generator overrides) come from the family itself (``Family.preset_sizes``), and a
preset runs exactly the registered families that declare a size for it. The report states what was shrunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from icl_generalization.core.errors import UserError
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.family import ConfigValue
from icl_generalization.training.strategies import STRATEGIES

# The rival knowledge-injection methods beside the paper's local augmentation (``global`` is the semantic
# structure's own mode in these presets; ``reverse_word`` and ``reverse_entity`` are both reverse training).
COMPARED_STRATEGIES = ("local", "paraphrase", "repeat", "reverse_word", "reverse_entity", "self_qa", "entigraph")


@dataclass(frozen=True)
class FamilyPlan:
    # Generator overrides: always the family's own preset size (Preset.families fills it in; a table never does).
    data_config: dict[str, ConfigValue] = field(default_factory=dict)
    ft_steps: int = 300
    # The study's plain-FT baseline on the semantic structure is not split (splitting hurt it there);
    # augmented FT is split independently. Single-fact families are not split at all.
    ft_split: str = "none"
    aug_split: str = "none"
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields
    eval_limit: int | None = None
    # Token limit of a training example, when the family's documents need more than the recipe's.
    max_length: int | None = None
    # Augmentation strategies run side by side (names of training/strategies), each finetuned with ft_steps on
    # the documents plus its own text cut or repeated to ``token_budget`` added tokens, and evaluated closed-book.
    strategies: tuple[str, ...] = ()
    token_budget: int | None = None
    strategy_augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields of every strategy run


@dataclass(frozen=True)
class Preset:
    name: str
    recipe: str  # the base recipe (adapters/recipes/NAME.yaml); plans override steps, split and data
    # Training knobs per family; a family that declares a size for this preset but has no entry gets the defaults.
    training: dict[str, FamilyPlan]
    context_budget: int | None = None  # None: the model's window minus the margin
    batch_size: int = 16
    shrunk: str = ""

    def __post_init__(self) -> None:
        sized = [name for name, plan in self.training.items() if plan.data_config]
        if sized:
            raise ValueError(f"preset {self.name}: data sizes of {', '.join(sized)} belong in the family's "
                             "preset_sizes, not in the preset")
        for family, plan in self.training.items():
            unknown = [s for s in plan.strategies if s not in STRATEGIES]
            if unknown:
                raise ValueError(f"preset {self.name}, {family}: unknown strategies {', '.join(unknown)}; "
                                 f"choose from {', '.join(STRATEGIES)}")
            if plan.strategies and not plan.token_budget:
                raise ValueError(f"preset {self.name}, {family}: strategies need a token_budget to match")

    @property
    def families(self) -> dict[str, FamilyPlan]:
        """The plan of every registered family with a data size for this preset, in registry order."""
        return {name: replace(self.training.get(name, FamilyPlan()), data_config=dict(family.preset_sizes[self.name]))
                for name, family in FAMILIES.items() if self.name in family.preset_sizes}


PRESETS: dict[str, Preset] = {
    "cpu-small": Preset(
        name="cpu-small", recipe="cpu-small", context_budget=4096,
        training={
            "reversal_curse": FamilyPlan(
                ft_steps=300, augment={"mode": "local", "sample": 100, "outputs_per_input": 2, "max_new_tokens": 48}),
            # The matched-budget comparison runs on the simple reversals, a reversal failure that reverse training
            # targets and whose 150-step finetune fits two CPU cores seven more times (the reversal curse's 300
            # steps on 400 documents take four times as long): each strategy adds 4,000 tokens (below the 5,700
            # the local augmentation writes) to the same 200 documents and trains the same 150 steps.
            "simple_reversal": FamilyPlan(
                ft_steps=150, augment={"mode": "local", "sample": 60, "outputs_per_input": 2, "max_new_tokens": 48},
                strategies=COMPARED_STRATEGIES, token_budget=4000,
                strategy_augment={"sample": 60, "outputs_per_input": 2, "max_new_tokens": 48}),
            "syllogism": FamilyPlan(
                ft_steps=100, augment={"mode": "local", "sample": 35, "outputs_per_input": 2, "max_new_tokens": 48}),
            "semantic": FamilyPlan(
                ft_steps=200, ft_split="none", aug_split="independent", max_length=512,
                augment={"mode": "global", "sample": 16, "outputs_per_input": 1, "max_new_tokens": 128,
                         "context_budget": 3072}),
            # One-sentence rules and worked examples: local augmentation of each, like the simple reversals.
            "process": FamilyPlan(
                ft_steps=150, augment={"mode": "local", "sample": 60, "outputs_per_input": 2, "max_new_tokens": 48}),
        },
        shrunk=("reversal curse: 30 people and 10 templates per direction (400 documents, 100 questions per split) "
                "instead of 90 and 30 (3,600); simple reversals: 40 facts x 5 articles (200 documents) instead of "
                "100 x 10; syllogisms: full size; semantic structure: 300 documents, 50 questions per split and 5 "
                "held-out categories instead of 2,200, up to 200 and 10; process knowledge: full size (328 "
                "documents, 120 questions); in-context prompts capped at 4,096 tokens instead of the model's "
                "8,192; finetuning 100-300 LoRA steps on CPU; augmentation of a random sample of 16-100 documents "
                "per family (local mode, global mode for the semantic structure) instead of every document; the "
                "matched-budget comparison of augmentation strategies on the simple reversals only, 4,000 "
                "added tokens each, generated from a sample of 60 documents"),
    ),
    "paper": Preset(
        name="paper", recipe="paper",
        training={
            "reversal_curse": FamilyPlan(ft_steps=1000, augment={"mode": "local", "outputs_per_input": 3}),
            "simple_reversal": FamilyPlan(ft_steps=500, augment={"mode": "local", "outputs_per_input": 3}),
            "syllogism": FamilyPlan(ft_steps=300, augment={"mode": "local", "outputs_per_input": 3}),
            "semantic": FamilyPlan(ft_steps=1000, ft_split="none", aug_split="independent",
                                   augment={"mode": "global", "outputs_per_input": 1, "max_new_tokens": 512}),
            "process": FamilyPlan(ft_steps=500, augment={"mode": "local", "outputs_per_input": 3}),
        },
        shrunk="nothing: the study's sizes, every document augmented",
    ),
    # Every stage at the smallest size: checks a model and machine end to end in minutes.
    "smoke": Preset(
        name="smoke", recipe="cpu-small", context_budget=512, batch_size=8,
        training={
            "reversal_curse": FamilyPlan(ft_steps=2, augment={"mode": "local", "limit": 2, "outputs_per_input": 1,
                                                              "max_new_tokens": 8},
                                         strategies=COMPARED_STRATEGIES, token_budget=300,
                                         strategy_augment={"sample": 4, "outputs_per_input": 1,
                                                           "max_new_tokens": 24}),
            "syllogism": FamilyPlan(ft_steps=2,
                                    augment={"mode": "global", "limit": 2, "outputs_per_input": 1,
                                             "max_new_tokens": 8}),
            "process": FamilyPlan(ft_steps=2, augment={"mode": "local", "limit": 2, "outputs_per_input": 1,
                                                       "max_new_tokens": 8}),
        },
        shrunk="everything: a pipeline check, not a measurement",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
