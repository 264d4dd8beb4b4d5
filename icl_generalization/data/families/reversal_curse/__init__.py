"""The reversal curse (Berglund et al. 2023): fictional people described in one direction (see ``generator``;
``berglund`` imports the study's released files instead)."""

from icl_generalization.data.families.reversal_curse import generator
from icl_generalization.data.families.reversal_curse.checker import check_reversal_curse
from icl_generalization.data.family import Claim, FamilySpec

# task_version 1.1: the data of generator 1.1 (unique names, option groups, balanced gold positions).
FAMILY = FamilySpec(
    name=generator.NAME, generator_version=generator.GENERATOR_VERSION, task_version=1.1,
    splits=generator.SPLITS, inference_splits=frozenset({"p2d_reverse", "d2p_reverse"}),
    reversal_splits=frozenset({"p2d_reverse", "d2p_reverse"}), sweep_split="p2d_reverse",
    chance=dict.fromkeys(generator.SPLITS, 0.25),
    description="fictional people described in one direction (Berglund et al. 2023)",
    config_cls=generator.ReversalCurseConfig, generate=generator.generate, checker=check_reversal_curse,
    cluster_key=generator.person_of,
    claims=(Claim("p2d_reverse", "ICL", ">", "FT"), Claim("p2d_reverse", "augmented FT", ">", "FT"),
            Claim("p2d_reverse", "FT", "<=", "chance"), Claim("p2d_reverse", "pretrained", "~", "chance"),
            Claim("p2d", "FT", ">", "chance")),
    preset_sizes={"cpu-small": {"people_per_set": 10, "train_templates": 10}, "paper": {},
                  "smoke": {"people_per_set": 4, "train_templates": 2, "test_templates": 2}},
)
