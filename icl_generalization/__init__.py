"""icl-generalization: how language models generalize from in-context learning versus finetuning.

An lm-evaluation-harness task pack (``icl-gen tasks-path``), its model class (``icl-gen``), the dataset
generators of the study, and the finetuning / augmentation pipeline. The names below are the public API; the
stages behind them are described in docs/ARCHITECTURE.md. Importing the package loads no model and no torch.
"""

from icl_generalization.core.errors import ContextBudgetError, DataError, UserError
from icl_generalization.core.paths import tasks_path
from icl_generalization.data.checkers import check_dataset
from icl_generalization.data.export import to_hf
from icl_generalization.data.families import DEFAULT_SEED, FAMILIES, build, get_family
from icl_generalization.data.family import Claim, Family, FamilySpec
from icl_generalization.data.records import Dataset, TestItem, TrainDoc, read_dataset
from icl_generalization.data.writing import write_dataset
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.training.backends import GenerationBackend
from icl_generalization.training.recipes import Recipe, load_recipe
from icl_generalization.weights.default_model import DEFAULT_MODEL, resolve_model
from icl_generalization.weights.manifest import Manifest, read_manifest

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SEED",
    "FAMILIES",
    "Claim",
    "ContextBudgetError",
    "DataError",
    "Dataset",
    "Family",
    "FamilySpec",
    "GenerationBackend",
    "Manifest",
    "Recipe",
    "TaskOptions",
    "TestItem",
    "TrainDoc",
    "UserError",
    "build",
    "check_dataset",
    "get_family",
    "load_recipe",
    "read_dataset",
    "read_manifest",
    "resolve_model",
    "tasks_path",
    "to_hf",
    "write_dataset",
]
__version__ = "0.1.0"
