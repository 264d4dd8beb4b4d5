"""Long-context sweeps: accuracy of an in-context task per context length (``icl_gen_<family>_icl_sweep``).

The study observed that interference grows with context length (it subsampled the largest training sets
8x for that reason). A sweep task makes this measurable: the same questions are asked with contexts built
to several token budgets, and the metric names are the lengths, as in lm-eval's RULER tasks. Lengths are
chosen with ``--metadata sweep_lengths=[512,2048]``; by default every listed length up to the model's window.
A length that was not run reports -1, RULER's convention, so a table never shows a made-up zero.

Sweeps build contexts in ``shard`` mode by default (``--metadata context_mode=...`` overrides): in ``auto``
mode every length that can hold the 8x subsample would get the same prompt, and the columns would repeat one
measurement. The context each length really got is recorded (``sweep_context_tokens``): a training set
smaller than a length cannot fill it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from icl_generalization.core.errors import ContextBudgetError, UserError
from icl_generalization.tasks.harness import model_window, task_rows

# The metric names of every sweep task (YAML metric lists are static, so the menu is fixed here).
SWEEP_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
DEFAULT_ITEMS_PER_LENGTH = 100
NOT_RUN = -1.0
log = logging.getLogger(__name__)


def requested_lengths(kwargs: Mapping[str, Any], window: int) -> list[int]:
    raw = kwargs.get("sweep_lengths")
    if raw is None:
        return [n for n in SWEEP_LENGTHS if n <= window]
    values = [int(x) for x in (raw.split(",") if isinstance(raw, str) else raw)]
    unknown = sorted(set(values) - set(SWEEP_LENGTHS))
    if unknown:
        raise UserError(f"sweep_lengths {unknown} are not sweep metrics; choose from {list(SWEEP_LENGTHS)}")
    too_long = [n for n in values if n > window]
    if too_long:
        raise UserError(f"sweep_lengths {too_long} exceed the model's window of {window} tokens")
    return sorted(set(values))


def sweep_rows(family: str, split: str, kwargs: Mapping[str, Any]) -> tuple[list[dict], dict]:
    window = model_window(kwargs)
    lengths = requested_lengths(kwargs, window)
    per_length = int(kwargs.get("sweep_items", DEFAULT_ITEMS_PER_LENGTH))
    columns: list[list[dict]] = []
    ran, skipped = [], []
    provenance: dict[str, Any] = {}
    context_tokens: dict[str, int] = {}
    for length in lengths:
        try:
            rows, provenance = task_rows(family, split, "icl", {"context_mode": "shard", **kwargs,
                                                                  "context_budget": length})
        except ContextBudgetError as exc:
            # A short length that cannot hold a question's evidence is reported as not run (-1).
            log.warning("sweep %s_%s: skipping %d tokens: %s", family, split, length, exc)
            skipped.append(length)
            continue
        ran.append(length)
        context_tokens[str(length)] = int(provenance["context_tokens_max"])
        columns.append([{**row, "sweep_length": length} for row in rows[:per_length]])
    if not columns:
        raise UserError(f"icl_gen_{family}_icl_sweep: no requested length ({lengths}) can hold the questions")
    # Interleaved by length, so `--limit N` still samples every length.
    rows = [column[i] for i in range(max(map(len, columns))) for column in columns if i < len(column)]
    provenance = {**provenance, "sweep_lengths": ran, "sweep_skipped": skipped, "sweep_items": per_length,
                  "sweep_context_tokens": context_tokens}
    for key in ("context_budget", "shards", "strategy", "context_tokens_max", "context_docs_max"):
        provenance.pop(key, None)
    return rows, provenance


def process_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, float]:
    """Accuracy of this question under its own length; every other length gets NOT_RUN."""
    lls = np.array([ll for ll, _ in results])
    correct = float(int(np.argmax(lls)) in doc["gold"])
    metrics = {str(n): NOT_RUN for n in SWEEP_LENGTHS}
    metrics[str(doc["sweep_length"])] = correct
    return metrics


def aggregate(values: Sequence[float]) -> float:
    kept = [v for v in values if v != NOT_RUN]
    return sum(kept) / len(kept) if kept else NOT_RUN
