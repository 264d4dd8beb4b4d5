"""Process knowledge: a pseudo-derivative with unusual rules over nonsense symbols (see ``generator``)."""

from icl_generalization.data.families.process import generator
from icl_generalization.data.families.process.checker import check_process
from icl_generalization.data.family import Claim, FamilySpec

FAMILY = FamilySpec(
    name=generator.NAME, generator_version=generator.GENERATOR_VERSION, task_version=1.0,
    # `rule` asks one stated atom rule in new words; `held_out` applies an operator rule and an atom rule that no
    # worked example shows together, to a pair of atoms never combined in training.
    splits=generator.SPLITS, inference_splits=frozenset({"held_out"}),
    reversal_splits=frozenset(), sweep_split="held_out",
    chance={"rule": 0.25, "held_out": 0.125},
    description="a pseudo-derivative rewrite procedure over nonsense symbols, rule combinations held out",
    config_cls=generator.ProcessConfig, generate=generator.generate, checker=check_process,
    cluster_key=generator.needed_documents,
    # The paper lists this family in its appendix without results, so these are the study's general claims
    # (in-context learning generalizes better than finetuning; augmentation helps finetuning), not its figures.
    claims=(Claim("held_out", "ICL", ">", "FT", from_paper=False),
            Claim("held_out", "augmented FT", ">=", "FT", from_paper=False),
            Claim("held_out", "pretrained", "~", "chance", from_paper=False)),
    preset_sizes={"cpu-small": {}, "paper": {},
                  "smoke": {"n_atoms": 16, "phrasings": 1, "examples_per_combination": 1,
                            "items_per_combination": 1}},
)
