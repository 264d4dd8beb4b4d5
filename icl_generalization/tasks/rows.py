"""The documents of one task (closed book or in context) and the provenance its results record.

An in-context task's documents are cached on disk, keyed by everything that decides them (task, dataset
fingerprint, tokenizer, budget, mode, number of questions, context version), so a second run reads them instead
of sizing every context again.

Rows are interleaved by the family's cluster key (the fact an item tests), so ``--limit N`` asks about as many
facts as N allows instead of N questions about the first few; each row names its ``cluster``, so per-sample logs
can carry standard errors clustered by fact.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from pydantic import JsonValue

from icl_generalization.core.digest import sha256_of
from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_write_text, cache_dir
from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.families import DEFAULT_SEED, get_family
from icl_generalization.data.family import Family
from icl_generalization.data.load import get_dataset
from icl_generalization.data.records import Dataset, TestItem, chance_rate
from icl_generalization.tasks.context import CONTEXT_VERSION, ContextBuilder, Shard
from icl_generalization.tasks.names import Condition, task_name
from icl_generalization.tasks.options import TaskOptions, family_overrides
from icl_generalization.tasks.tokenizer import (
    load_tokenizer,
    model_name_for_tokenizer,
    model_window,
    tokenizer_fingerprint,
)
from icl_generalization.weights.default_model import resolve_model

Provenance = dict[str, JsonValue]
# Counts of cache use in this process; tests assert on them (a second build must read, not rebuild).
CACHE_STATS = {"built": 0, "read": 0}


class Row(TypedDict):
    """One lm-eval document: ``query`` is the whole prompt (context + question); choices carry their space."""

    id: str
    split: str
    query: str
    prompt: str
    choices: list[str]
    gold: list[int]
    fingerprint: str
    # The fact the item tests (the family's cluster key): questions of one cluster stand or fall together.
    cluster: str
    context_tokens: int
    context_docs: int
    shard: int
    # The item's form (``FamilySpec.form_key``), for per-form scores; only families that declare forms have it,
    # so the documents (and lm-eval's doc hashes) of the others stay as they were.
    form: NotRequired[str]


@dataclass(frozen=True)
class TaskRows:
    rows: list[Row]
    provenance: Provenance


def _data_choice(family: str, options: TaskOptions) -> tuple[int, dict[str, JsonValue]]:
    """Seed and generator overrides; a checkpoint evaluated on its own family defaults to its training data.

    The manifest records the training data's seed and overrides; without them a checkpoint trained on a smaller
    set would be tested on people it never saw. Explicit ``data_seed`` / ``data_config`` win.
    """
    seed, config = options.data_seed, options.data_config
    if options.checkpoint and (seed is None or config is None):
        from icl_generalization.weights.loading import checkpoint_training_data

        trained = checkpoint_training_data(options.checkpoint)
        if trained is not None and trained.family == family:
            seed = trained.data_seed if seed is None else seed
            config = dict(trained.data_config) if config is None else config
    return (DEFAULT_SEED if seed is None else seed), family_overrides(family, config)


def task_rows(family: str, split: str, condition: Condition, options: TaskOptions,
              max_items: int | None = None) -> TaskRows:
    """The lm-eval documents of one task and the provenance to record (fingerprint, sizes...).

    ``max_items`` keeps the first questions after interleaving by cluster (a sweep's questions span every fact
    they can); contexts are built for those questions only, and the provenance describes them.
    """
    spec = get_family(family)
    seed, overrides = _data_choice(family, options)
    ds = get_dataset(family, seed, overrides, options.data_source)
    if split not in ds.splits:
        raise UserError(f"{family} has no test split {split!r}; it has {', '.join(ds.splits)}")
    task = task_name(family, split, condition)
    items = interleave_by_cluster(ds.items(split), spec.cluster_of)[:max_items]
    provenance: Provenance = {
        "family": family, "split": split, "condition": condition, "fingerprint": ds.fingerprint(),
        "generator_version": ds.generator_version, "data_seed": seed, "data_source": ds.source,
        "n_items": len(items),
        # Items that share a closed-book prompt are not independent (the model's preferences after that prompt
        # are fixed); the contamination check counts distinct prompts, not items.
        "n_prompts": len({item.prompt for item in items}),
        # Expected accuracy of a uniform guess (several golds count): the line plots draw and the
        # contamination check tests against.
        "chance": round(chance_rate(items), 6),
    }
    if condition == "closed_book":
        return TaskRows([_row(item, ds, spec, "", 0, 0, -1) for item in items], provenance)
    rows, sizes = _icl_rows(task, ds, spec, items, seed, options, provenance)
    return TaskRows(rows, {**provenance, **sizes})


def _icl_rows(task: str, ds: Dataset, spec: Family, items: list[TestItem], seed: int, options: TaskOptions,
              provenance: Provenance) -> tuple[list[Row], Provenance]:
    resolved = resolve_model(model_name_for_tokenizer(options))
    tokenizer = load_tokenizer(resolved)
    window = model_window(options)
    budget = options.context_budget or window - options.context_margin
    if budget > window:
        raise UserError(f"{task}: context_budget {budget} exceeds the model's window of {window} tokens")
    mode = options.context_mode or "auto"
    sizes: Provenance = {"tokenizer": resolved, "context_budget": budget, "context_mode": mode,
                         "context_version": CONTEXT_VERSION}
    key_parts = [task, provenance["fingerprint"], tokenizer_fingerprint(tokenizer), budget, mode, len(items),
                 CONTEXT_VERSION]
    key = sha256_of(json.dumps(key_parts))[:24]
    cached = cache_dir("tasks") / f"{task}-{key}.json"
    if cached.is_file():
        CACHE_STATS["read"] += 1
        payload = json.loads(cached.read_text(encoding="utf-8"))
        return payload["rows"], {**sizes, **payload["provenance"]}

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    builder = ContextBuilder(ds.train, count, budget, random.Random(f"{seed}:{task}"), task=task, mode=mode)
    by_id = {i.id: i for i in items}
    shards = builder.plan(items)
    rows = [_row(item, ds, spec, shard.context, shard.n_tokens, len(shard.doc_ids), index)
            for index, shard in enumerate(shards) for item in _shard_order(shard, by_id, spec)]
    strategies: list[JsonValue] = [*sorted({s.strategy for s in shards})]
    extra: Provenance = {"shards": len(shards), "strategy": strategies,
                         "context_tokens_max": max(s.n_tokens for s in shards),
                         "context_docs_max": max(len(s.doc_ids) for s in shards)}
    atomic_write_text(cached, json.dumps({"rows": rows, "provenance": extra}))
    CACHE_STATS["built"] += 1
    return rows, {**sizes, **extra}


def _shard_order(shard: Shard, by_id: dict[str, TestItem], spec: Family) -> list[TestItem]:
    """A shard's questions interleaved by cluster.

    Rows stay grouped by shard, so `--limit N` takes whole shards first: a limit that hopped between shards would
    pay for one long context per question, where a shard's questions share one (the prefix cache computes it
    once). Within that constraint the prefix spans as many facts as it can: the shards are packed from questions
    already interleaved by cluster, so the first shard holds many facts, and its own questions are interleaved.
    """
    return interleave_by_cluster((by_id[i] for i in shard.item_ids), spec.cluster_of)


def _row(item: TestItem, ds: Dataset, spec: Family, context: str, n_tokens: int, n_docs: int, shard: int) -> Row:
    row: Row = {
        "id": item.id, "split": item.split, "query": context + item.prompt, "prompt": item.prompt,
        "choices": list(item.choices), "gold": list(item.gold), "fingerprint": ds.fingerprint(),
        "cluster": spec.cluster_of(item), "context_tokens": n_tokens, "context_docs": n_docs, "shard": shard,
    }
    form = spec.form_of(item)
    if form is not None:
        row["form"] = form
    return row
