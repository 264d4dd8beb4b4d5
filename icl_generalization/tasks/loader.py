"""The ``custom_dataset`` entry point of every task YAML: the only code that knows lm-eval's keyword arguments.

lm-eval calls it with the YAML ``metadata``, ``--metadata`` and *all* ``--model_args`` merged into keyword
arguments, plus the YAML ``dataset_kwargs``. The task identity (family, split, condition) travels in
``dataset_kwargs`` (a forgetting control's task carries only ``control``, and takes no options); the options a user
may tune are parsed once into ``TaskOptions`` (see ``options.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from icl_generalization.tasks.control_rows import control_rows
from icl_generalization.tasks.names import SWEEP, as_condition
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.tasks.rows import task_rows
from icl_generalization.tasks.sweep import sweep_rows

if TYPE_CHECKING:
    import datasets


def load_task_dataset(family: str, split: str, condition: str, **kwargs: object) -> datasets.DatasetDict:
    options = TaskOptions.from_lm_eval(kwargs)
    if condition == SWEEP:
        rows, provenance = sweep_rows(family, split, options)
        records: list[object] = list(rows)
    else:
        built = task_rows(family, split, as_condition(condition), options)
        records, provenance = list(built.rows), built.provenance
    return _as_dataset(records, provenance, kwargs)


def load_control_dataset(control: str, **kwargs: object) -> datasets.DatasetDict:
    """A forgetting control's documents (``data/controls``): closed-book, the same for every model and option."""
    built = control_rows(control)
    return _as_dataset(list(built.rows), built.provenance, kwargs)


def _as_dataset(records: list[object], provenance: Mapping[str, object],
                kwargs: Mapping[str, object]) -> datasets.DatasetDict:
    import datasets

    # The YAML's metadata holds an empty ``provenance`` mapping; lm-eval passes that very object in
    # (a shallow merge keeps nested objects), so filling it here records the fingerprint, generator
    # version and context sizes in the results' task config.
    record = kwargs.get("provenance")
    if isinstance(record, dict):
        record.clear()
        record.update(provenance)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(records)})
