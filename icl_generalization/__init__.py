"""icl-generalization: how language models generalize from in-context learning versus finetuning.

An lm-evaluation-harness task pack (``icl-gen tasks-path``), its model class (``icl-gen``), the dataset
generators of the study, and the finetuning / augmentation pipeline.
"""

from icl_generalization.core.errors import ContextBudgetError, DataError, UserError
from icl_generalization.core.paths import tasks_path
from icl_generalization.data.checkers import check_dataset
from icl_generalization.data.export import to_hf
from icl_generalization.data.families import DEFAULT_SEED, FAMILIES, build
from icl_generalization.data.records import Dataset, TestItem, TrainDoc, read_dataset, write_dataset
from icl_generalization.weights.default_model import DEFAULT_MODEL, resolve_model

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SEED",
    "FAMILIES",
    "ContextBudgetError",
    "DataError",
    "Dataset",
    "TestItem",
    "TrainDoc",
    "UserError",
    "build",
    "check_dataset",
    "read_dataset",
    "resolve_model",
    "tasks_path",
    "to_hf",
    "write_dataset",
]
__version__ = "0.1.0"
