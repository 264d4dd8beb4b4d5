"""The ``custom_dataset`` entry point of every task YAML: the only code that knows lm-eval's keyword arguments.

lm-eval calls it with the YAML ``metadata``, ``--metadata`` and *all* ``--model_args`` merged into keyword
arguments, plus the YAML ``dataset_kwargs``. The task identity (family, split, condition) travels in
``dataset_kwargs``; the options a user may tune are parsed once into ``TaskOptions`` (see ``options.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from icl_generalization.tasks.names import SWEEP, as_condition
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.tasks.rows import task_rows
from icl_generalization.tasks.sweep import sweep_rows

if TYPE_CHECKING:
    import datasets


def load_task_dataset(family: str, split: str, condition: str, **kwargs: object) -> datasets.DatasetDict:
    import datasets

    options = TaskOptions.from_lm_eval(kwargs)
    if condition == SWEEP:
        rows, provenance = sweep_rows(family, split, options)
        records: list[object] = list(rows)
    else:
        built = task_rows(family, split, as_condition(condition), options)
        records, provenance = list(built.rows), built.provenance
    # The YAML's metadata holds an empty ``provenance`` mapping; lm-eval passes that very object in
    # (a shallow merge keeps nested objects), so filling it here records the fingerprint, generator
    # version and context sizes in the results' task config.
    record = kwargs.get("provenance")
    if isinstance(record, dict):
        record.clear()
        record.update(provenance)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(records)})
