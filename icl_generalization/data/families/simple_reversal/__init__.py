"""Simple reversals: comparisons between nonsense entities, tested reversed (see ``generator``)."""

from icl_generalization.data.families.simple_reversal import generator
from icl_generalization.data.families.simple_reversal.checker import check_simple_reversal
from icl_generalization.data.family import Claim, FamilySpec

# task_version 1.2: the data of generator 1.2 (gold positions balanced exactly).
FAMILY = FamilySpec(
    name=generator.NAME, generator_version=generator.GENERATOR_VERSION, task_version=1.2,
    splits=generator.SPLITS, inference_splits=frozenset({"reversal"}),
    reversal_splits=frozenset({"reversal"}), sweep_split="reversal",
    chance={"reversal": 0.5},
    description="comparisons between nonsense entities, tested reversed",
    config_cls=generator.SimpleReversalConfig, generate=generator.generate, checker=check_simple_reversal,
    cluster_key=generator.pair_of,
    claims=(Claim("reversal", "augmented FT", ">", "ICL"), Claim("reversal", "ICL", ">", "FT"),
            Claim("reversal", "pretrained", "~", "chance")),
    preset_sizes={"cpu-small": {"n_facts": 40, "articles_per_fact": 5}, "paper": {}},
)
