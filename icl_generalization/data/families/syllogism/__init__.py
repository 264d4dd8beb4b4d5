"""Syllogisms: two premises over nonsense terms; every valid conclusion is gold (see ``generator``)."""

from icl_generalization.data.families.syllogism import generator
from icl_generalization.data.families.syllogism.checker import check_syllogism
from icl_generalization.data.family import Claim, FamilySpec

FAMILY = FamilySpec(
    name=generator.NAME, generator_version=generator.GENERATOR_VERSION, task_version=1.1,
    splits=generator.SPLITS, inference_splits=frozenset({"conclusion"}),
    reversal_splits=frozenset(), sweep_split="conclusion",
    # 1/6 for Barbara-like items (one valid statement), 1/3 for the rest (two): see the generator's docstring.
    chance={"conclusion": 0.316},
    description="two premises over nonsense terms; every valid conclusion is gold",
    config_cls=generator.SyllogismConfig, generate=generator.generate, checker=check_syllogism,
    cluster_key=lambda item: "|".join(sorted(d for group in item.needs for d in group)),  # the premise document
    claims=(Claim("conclusion", "augmented FT", ">=", "ICL"), Claim("conclusion", "ICL", ">", "FT"),
            Claim("conclusion", "FT", ">", "chance")),
    # Full size except in the smoke run: 69 items are cheap.
    preset_sizes={"cpu-small": {}, "paper": {}, "smoke": {"n_items": 9}},
)
