"""Long-context sweeps: accuracy of an in-context task per context length (``icl_gen_<family>_icl_sweep``).

The study observed that interference grows with context length (it subsampled the largest training sets
8x for that reason). A sweep task makes this measurable: the same questions are asked with contexts built
to several token budgets, and the metric names are the lengths, as in lm-eval's RULER tasks. Lengths are
chosen with ``--metadata sweep_lengths=[512,2048]``; by default every listed length up to the model's window.

A length that did not run has no metric at all (RULER reports -1 instead): each document returns only the
metric of its own length, and lm-eval aggregates a metric over the documents that returned it, so no mean
and no standard error ever sees a made-up value. The provenance lists the lengths that ran and, for each
length skipped, why.

Sweeps build contexts in ``shard`` mode by default (``--metadata context_mode=...`` overrides): in ``auto``
mode every length that can hold the 8x subsample would get the same prompt, and the columns would repeat one
measurement. The context each length really got is recorded (``sweep_context_tokens``): a training set
smaller than a length cannot fill it. Every context holds a document mentioning each option of its questions as
well as their evidence (see ``context``), so a short length is not a test of which option is in the context; a
length too short for that is skipped.

Each length asks every question of the split by default. ``sweep_items=N`` asks the first N after interleaving by
the family's cluster key, so they span as many facts (people, pairs, premises, categories) as N questions can
rather than every question about the first few (contexts are built for those questions only); note that a subset
loses the split's balance of how often each option recurs, which the shortcut audit's split-frequency baselines
see, so the default is the whole split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pydantic import JsonValue

from icl_generalization.core.errors import ContextBudgetError, UserError
from icl_generalization.tasks.names import SWEEP_LENGTHS, sweep_task_name
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.tasks.rows import Provenance, Row, TaskRows, task_rows
from icl_generalization.tasks.tokenizer import model_window

log = logging.getLogger(__name__)


class SweepRow(Row):
    sweep_length: int


def requested_lengths(options: TaskOptions, window: int) -> list[int]:
    if options.sweep_lengths is None:
        return [n for n in SWEEP_LENGTHS if n <= window]
    too_long = [n for n in options.sweep_lengths if n > window]
    if too_long:
        raise UserError(f"sweep_lengths {too_long} exceed the model's window of {window} tokens")
    return list(options.sweep_lengths)


def sweep_rows(family: str, split: str, options: TaskOptions) -> tuple[list[SweepRow], Provenance]:
    lengths = requested_lengths(options, model_window(options))
    # Shard mode unless the user chose a mode (see the module docstring).
    mode = options.context_mode or "shard"
    columns: list[list[SweepRow]] = []
    built: TaskRows | None = None
    ran: list[JsonValue] = []
    skipped: dict[str, JsonValue] = {}
    context_tokens: dict[str, JsonValue] = {}
    for length in lengths:
        try:
            built = task_rows(family, split, "icl",
                              options.model_copy(update={"context_budget": length, "context_mode": mode}),
                              max_items=options.sweep_items)
        except ContextBudgetError as exc:
            # A length too short to hold a question's evidence is left out of the results, with the reason.
            log.warning("%s: skipping %d tokens: %s", sweep_task_name(family), length, exc)
            skipped[str(length)] = str(exc)
            continue
        ran.append(length)
        context_tokens[str(length)] = built.provenance["context_tokens_max"]
        columns.append([SweepRow(**row, sweep_length=length) for row in built.rows])
    if built is None:
        reasons = "; ".join(f"{n}: {why}" for n, why in skipped.items())
        raise UserError(f"{sweep_task_name(family)}: no requested length ({lengths}) can hold the questions "
                        f"({reasons})")
    # Interleaved by length, so `--limit N` still samples every length.
    rows = [column[i] for i in range(max(map(len, columns))) for column in columns if i < len(column)]
    provenance = {k: v for k, v in built.provenance.items()
                  if k not in ("context_budget", "shards", "strategy", "context_tokens_max", "context_docs_max")}
    provenance.update(sweep_lengths=ran, sweep_skipped=skipped,
                      sweep_items=built.provenance["n_items"], sweep_context_tokens=context_tokens)
    return rows, provenance


def process_results(doc: SweepRow, results: Sequence[tuple[float, bool]]) -> dict[str, float]:
    """Accuracy of this question under its own length, the only metric it has an answer for."""
    lls = np.array([ll for ll, _ in results])
    return {str(doc["sweep_length"]): float(int(np.argmax(lls)) in doc["gold"])}
