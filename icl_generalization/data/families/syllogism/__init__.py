"""Syllogisms: the study's two-premise items, and a balanced diagnostic that only logic solves (see ``generator``)."""

from icl_generalization.data.families.syllogism import generator
from icl_generalization.data.families.syllogism.checker import check_syllogism
from icl_generalization.data.family import Claim, FamilySpec

FAMILY = FamilySpec(
    # 1.2: the balanced split (see generator.GENERATOR_VERSION).
    name=generator.NAME, generator_version=generator.GENERATOR_VERSION, task_version=1.2,
    # `conclusion` is the study's split, kept for reproduction: the atmosphere heuristic solves it (see the
    # generator's docstring), so it cannot claim inference; `balanced` is the family's inference test.
    splits=generator.SPLITS, inference_splits=frozenset({"balanced"}),
    reversal_splits=frozenset(), sweep_split="balanced",
    # conclusion: 1/6 for Barbara-like items (one valid statement), 1/3 for the rest (two); balanced: 1/5 by
    # construction (balanced.KINDS).
    chance={"conclusion": 0.316, "balanced": 0.2},
    description="two premises over nonsense terms (the study's items) and a balanced three-premise diagnostic",
    config_cls=generator.SyllogismConfig, generate=generator.generate, checker=check_syllogism,
    cluster_key=generator.premise_document, form_key=generator.item_form,
    # The study's orderings on its own items; the generalization ones again on the split only logic solves.
    claims=(Claim("conclusion", "augmented FT", ">=", "ICL"), Claim("conclusion", "ICL", ">", "FT"),
            Claim("conclusion", "FT", ">", "chance"),
            Claim("balanced", "augmented FT", ">=", "ICL"), Claim("balanced", "ICL", ">", "FT")),
    # Full size except in the smoke run: the items are cheap.
    preset_sizes={"cpu-small": {}, "paper": {}, "smoke": {"n_items": 9, "n_balanced": 10}},
)
