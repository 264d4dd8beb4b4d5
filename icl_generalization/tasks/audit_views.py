"""The shortcut audit's in-context views: the exact prompt text the in-context and sweep tasks build.

The audit itself is model-free and lives with the data (``data.shortcuts``); only the contexts need the task
glue (the model's tokenizer sizes them), so they are built here, through the same ``task_rows`` / ``sweep_rows``
the lm-eval tasks call, and handed down as plain views.
"""

from __future__ import annotations

from collections.abc import Sequence

from icl_generalization.core.errors import UserError
from icl_generalization.data.families import get_family
from icl_generalization.data.records import Dataset
from icl_generalization.data.shortcuts import (
    View,
    audit,
    closed_book_views,
    failures,
    to_markdown,
)
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.tasks.rows import Row, task_rows
from icl_generalization.tasks.sweep import sweep_rows

SCOPES = ("all", "closed_book")


def _view(ds: Dataset, split: str, condition: str, rows: Sequence[Row]) -> View:
    by_id = {item.id: item for item in ds.items(split)}
    # A row's query is the context followed by the prompt (rows._row).
    contexts = tuple(r["query"][: len(r["query"]) - len(r["prompt"])] for r in rows)
    return View(split, condition, tuple(by_id[r["id"]] for r in rows), contexts)


def _task_options(ds: Dataset) -> TaskOptions:
    given: dict[str, object] = {"data_seed": ds.seed, "data_config": dict(ds.config)}
    if ds.source != "generated":
        given["data_source"] = ds.source
    return TaskOptions.from_lm_eval(given)


def in_context_views(ds: Dataset) -> list[View]:
    """Every split in context, and the family's sweep split at each length, for the dataset folder ``ds``.

    The tasks regenerate their data from family, seed and config; a folder they would not rebuild byte for byte
    (edited, or imported from elsewhere) cannot be audited in context, and saying so beats auditing other text.
    """
    options = _task_options(ds)
    views = []
    for split in ds.splits:
        built = task_rows(ds.family, split, "icl", options)
        fingerprint = str(built.provenance["fingerprint"])
        if fingerprint != ds.fingerprint():
            raise UserError(f"{ds.family}: the in-context tasks build data with fingerprint "
                            f"{fingerprint[:12]}, not this folder's {ds.fingerprint()[:12]}; "
                            "audit it closed-book only (--shortcuts closed_book)")
        views.append(_view(ds, split, "icl", built.rows))
    sweep_split = get_family(ds.family).sweep_split
    rows, provenance = sweep_rows(ds.family, sweep_split, options)
    ran = provenance["sweep_lengths"]
    for length in ran if isinstance(ran, list) else []:
        views.append(_view(ds, sweep_split, f"icl_sweep {length}", [r for r in rows if r["sweep_length"] == length]))
    return views


def shortcut_audit(ds: Dataset, scope: str = "all") -> tuple[str, list[str]]:
    """The audit's markdown table and its problems (failing splits), closed-book and (``all``) in context."""
    if scope not in SCOPES:
        raise UserError(f"shortcut audit scope must be one of {SCOPES}, got {scope!r}")
    views = closed_book_views(ds) + (in_context_views(ds) if scope == "all" else [])
    findings = audit(ds, views)
    return to_markdown(ds.family, findings), failures(findings)
