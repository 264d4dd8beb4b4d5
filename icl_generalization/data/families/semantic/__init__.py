"""Semantic structure: a real taxonomy of animals and objects in nonsense words (see ``generator``)."""

from icl_generalization.data.families.semantic import generator
from icl_generalization.data.families.semantic.checker import check_semantic
from icl_generalization.data.family import Claim, FamilySpec

_SPLITS = generator.SPLITS
_FINETUNED_OR_ICL = ("ICL", "FT", "augmented FT")

FAMILY = FamilySpec(
    name=generator.NAME, generator_version=generator.GENERATOR_VERSION,
    # 1.1: answers repeat at most twice per split, distractors frequency-balanced; 1.2: words from its own pool;
    # 1.3: no document names a category with what it only inherits, distractors matched to the answer in
    # co-occurrence with the subject, items interleaved by subject (issue 18)
    task_version=1.3,
    splits=_SPLITS, inference_splits=frozenset({"reversal", "syllogism", "category_holdout"}),
    reversal_splits=frozenset({"reversal"}), sweep_split="reversal",
    chance=dict.fromkeys(_SPLITS, 0.25),
    description="a real taxonomy of animals and objects in nonsense words",
    config_cls=generator.SemanticConfig, generate=generator.generate, checker=check_semantic,
    cluster_key=lambda item: str(item.meta["subject"]),  # the category asked about
    claims=(*(Claim(s, "ICL", ">", "FT") for s in _SPLITS),
            *(Claim(s, "augmented FT", ">=", "ICL") for s in _SPLITS),
            Claim("reversal", "FT", ">", "chance"),
            # "Category holdout hard for all": below the easiest split (rephrase) for every condition.
            *(Claim("category_holdout", c, "<", c, right_split="rephrase") for c in _FINETUNED_OR_ICL)),
    preset_sizes={"cpu-small": {"n_documents": 300, "rephrase_items": 50, "reversal_items": 50,
                                "syllogism_items": 50, "holdout_categories": 5},
                  "paper": {}},
)
