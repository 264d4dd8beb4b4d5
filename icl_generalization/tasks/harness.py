"""The one module that knows lm-eval's field names: ``custom_dataset`` loaders for the task YAMLs.

lm-eval calls a task's ``custom_dataset`` with the YAML ``metadata``, ``--metadata`` and *all*
``--model_args`` merged into keyword arguments, plus the YAML ``dataset_kwargs``. The task identity
(family, split, condition) travels in ``dataset_kwargs``; everything a user may tune travels in metadata:

- ``data_seed`` (int), ``data_config`` (dict of generator overrides), ``data_source`` (``berglund:PATH``);
- ``tokenizer`` / ``pretrained``: the tokenizer that sizes in-context prompts (default: the default model);
- ``max_length``, ``context_budget`` (tokens for the whole prompt), ``context_margin``, ``context_mode``.

Built task documents are cached on disk, keyed by everything that decides them, so a second run reads them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from icl_generalization.core.digest import sha256_of
from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_write_text, cache_dir
from icl_generalization.data.families import DEFAULT_SEED, build, get_family
from icl_generalization.data.records import Dataset, chance_rate
from icl_generalization.tasks.context import ContextBuilder
from icl_generalization.weights.default_model import resolve_model

CONDITIONS = ("closed_book", "icl")
SWEEP = "icl_sweep"
DEFAULT_MARGIN = 16
# Counts of cache use in this process; tests assert on them (a second build must read, not rebuild).
CACHE_STATS = {"built": 0, "read": 0}


@lru_cache(maxsize=16)
def _dataset(family: str, seed: int, overrides_json: str, source: str | None) -> Dataset:
    if source:
        kind, _, path = source.partition(":")
        if family == "reversal_curse" and kind == "berglund" and path:
            from icl_generalization.data.families.reversal_curse.berglund import import_berglund

            return import_berglund(Path(path).expanduser(), seed=seed)
        raise UserError(f"data_source {source!r} is not understood for {family}; "
                        "the reversal curse accepts berglund:PATH")
    return build(family, seed=seed, overrides=json.loads(overrides_json))


def get_dataset(family: str, seed: int = DEFAULT_SEED, overrides: Mapping[str, Any] | None = None,
                source: str | None = None) -> Dataset:
    return _dataset(family, int(seed), json.dumps(dict(overrides or {}), sort_keys=True), source)


@lru_cache(maxsize=4)
def _tokenizer(resolved: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolved)


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else f"{tokenizer.name_or_path}:{len(tokenizer)}"
    return sha256_of(blob)[:16]


def model_window(kwargs: Mapping[str, Any]) -> int:
    """The context window of the model named by ``kwargs`` (``max_length`` overrides the config)."""
    if kwargs.get("max_length"):
        return int(kwargs["max_length"])
    from transformers import AutoConfig

    resolved = resolve_model(model_name_for_tokenizer(kwargs))

    config = AutoConfig.from_pretrained(resolved)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UserError(f"cannot tell the context window of {resolved}; pass --model_args max_length=N")


def model_name_for_tokenizer(kwargs: Mapping[str, Any]) -> str | None:
    """Which model's tokenizer sizes the prompts: explicit ``tokenizer``, else ``pretrained``, else the base
    named by ``checkpoint=`` / ``peft=`` (an adapter keeps its base's tokenizer), else the default model."""
    name = kwargs.get("tokenizer") or kwargs.get("pretrained")
    if not name and (kwargs.get("checkpoint") or kwargs.get("peft")):
        from icl_generalization.weights.loading import checkpoint_base_name

        name = checkpoint_base_name(str(kwargs.get("checkpoint") or kwargs.get("peft")))
    return str(name) if name else None


def _checkpoint_data(family: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint evaluated on the family it was trained on sees the same generated data by default.

    Its manifest records the training data's seed and generator overrides; without them a checkpoint trained
    on a smaller set would be tested on people it never saw. Explicit ``data_seed``/``data_config`` win.
    """
    if not kwargs.get("checkpoint"):
        return {}
    from icl_generalization.weights.loading import checkpoint_training_data

    data = checkpoint_training_data(str(kwargs["checkpoint"]))
    if data is None or data.family != family:
        return {}
    return {"data_seed": data.data_seed, "data_config": dict(data.data_config)}


def family_overrides(family: str, data_config: Any) -> dict[str, Any]:
    """Generator overrides for one family from ``data_config``.

    Either the family's own fields (``{"n_facts": 20}``, for a run of one family) or a mapping keyed by family
    name (``{"semantic": {"n_documents": 300}, "syllogism": {"n_items": 20}}``), which one run of every
    family (``--tasks 'icl_gen_*'``) needs since each family rejects the others' fields.
    """
    if not data_config:
        return {}
    if isinstance(data_config, str):
        try:
            data_config = json.loads(data_config)
        except json.JSONDecodeError:
            raise UserError(f"data_config is not a JSON object: {data_config!r}") from None
    if not isinstance(data_config, dict):
        raise UserError(f"data_config must be a mapping, got {type(data_config).__name__}")
    from icl_generalization.data.families import FAMILIES

    keyed = [k for k in data_config if k in FAMILIES]
    if keyed and len(keyed) != len(data_config):
        raise UserError(f"data_config mixes family names ({', '.join(keyed)}) with fields; key every entry by family")
    return dict(data_config.get(family, {})) if keyed else dict(data_config)


def task_rows(family: str, split: str, condition: str, kwargs: Mapping[str, Any]) -> tuple[list[dict], dict]:
    """The lm-eval documents of one task and the provenance to record (fingerprint, sizes...)."""
    if condition not in CONDITIONS:
        raise UserError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    get_family(family)
    kwargs = {**_checkpoint_data(family, kwargs), **kwargs}
    seed = int(kwargs.get("data_seed", DEFAULT_SEED))
    overrides = family_overrides(family, kwargs.get("data_config"))
    source = kwargs.get("data_source")
    ds = get_dataset(family, seed, overrides, source)
    if split not in ds.splits:
        raise UserError(f"{family} has no test split {split!r}; it has {', '.join(ds.splits)}")
    task = f"icl_gen_{family}_{split}" + ("_icl" if condition == "icl" else "")
    items = ds.items(split)
    provenance: dict[str, Any] = {
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
        rows = [_row(item, ds, "", 0, 0, -1) for item in items]
        return rows, provenance

    resolved = resolve_model(model_name_for_tokenizer(kwargs))
    tokenizer = _tokenizer(resolved)
    window = model_window(kwargs)
    budget = int(kwargs.get("context_budget") or window - int(kwargs.get("context_margin", DEFAULT_MARGIN)))
    if budget > window:
        raise UserError(f"{task}: context_budget {budget} exceeds the model's window of {window} tokens")
    mode = str(kwargs.get("context_mode", "auto"))
    key_parts = [task, provenance["fingerprint"], _tokenizer_fingerprint(tokenizer), budget, mode]
    key = sha256_of(json.dumps(key_parts))[:24]
    cached = cache_dir("tasks") / f"{task}-{key}.json"
    provenance.update(tokenizer=resolved, context_budget=budget, context_mode=mode)
    if cached.is_file():
        CACHE_STATS["read"] += 1
        payload = json.loads(cached.read_text(encoding="utf-8"))
        provenance.update(payload["provenance"])
        return payload["rows"], provenance

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    builder = ContextBuilder(ds.train, count, budget, random.Random(f"{seed}:{task}"), task=task, mode=mode)
    by_id = {i.id: i for i in items}
    shards = builder.plan(items)
    rows = []
    # Rows are ordered by shard, so `--limit N` takes whole shards first and shares the fewest contexts.
    for index, shard in enumerate(shards):
        for item_id in shard.item_ids:
            rows.append(_row(by_id[item_id], ds, shard.context, shard.n_tokens, len(shard.doc_ids), index))
    extra = {"shards": len(shards), "strategy": sorted({s.strategy for s in shards}),
             "context_tokens_max": max(s.n_tokens for s in shards),
             "context_docs_max": max(len(s.doc_ids) for s in shards)}
    provenance.update(extra)
    atomic_write_text(cached, json.dumps({"rows": rows, "provenance": extra}))
    CACHE_STATS["built"] += 1
    return rows, provenance


def _row(item: Any, ds: Dataset, context: str, n_tokens: int, n_docs: int, shard: int) -> dict[str, Any]:
    return {
        "id": item.id, "split": item.split, "query": context + item.prompt, "prompt": item.prompt,
        "choices": list(item.choices), "gold": list(item.gold), "fingerprint": ds.fingerprint(),
        "context_tokens": n_tokens, "context_docs": n_docs, "shard": shard,
    }


def load_task_dataset(family: str, split: str, condition: str, **kwargs: Any) -> Any:
    """``custom_dataset`` entry point of every task YAML."""
    import datasets

    if condition == SWEEP:
        from icl_generalization.tasks.sweep import sweep_rows

        rows, provenance = sweep_rows(family, split, kwargs)
    else:
        rows, provenance = task_rows(family, split, condition, kwargs)
    # The YAML's metadata holds an empty ``provenance`` mapping; lm-eval passes that very object in
    # (a shallow merge keeps nested objects), so filling it here records the fingerprint, generator
    # version and context sizes in the results' task config.
    record = kwargs.get("provenance")
    if isinstance(record, dict):
        record.clear()
        record.update(provenance)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
