"""A dataset family as a Hugging Face ``datasets.DatasetDict``: ``train`` plus one split per test split.

Test items keep their fields; ``meta`` differs in shape between families (and splits), so it travels as a JSON
string rather than an Arrow struct that would need one schema. The knowledge graph of the semantic family is
not tabular: it stays in ``graph.json`` beside the data (``write_dataset``).
"""

from __future__ import annotations

import json
from typing import Any

from icl_generalization.data.records import Dataset


def to_hf(ds: Dataset) -> Any:
    import datasets

    train = [{"id": d.id, "text": d.text, "entities": list(d.entities), "kind": d.kind} for d in ds.train]
    splits = {"train": datasets.Dataset.from_list(train)}
    for split in ds.splits:
        rows = [{"id": i.id, "prompt": i.prompt, "choices": list(i.choices), "gold": list(i.gold),
                 "needs": [list(g) for g in i.needs], "entities": list(i.entities),
                 "meta": json.dumps(dict(i.meta), sort_keys=True)} for i in ds.items(split)]
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)


def push_to_hub(ds: Dataset, repo: str) -> None:
    """Upload as configuration ``<family>`` of ``repo`` (needs a logged-in account with write access)."""
    to_hf(ds).push_to_hub(repo, config_name=ds.family, commit_message=f"{ds.family} {ds.fingerprint()[:16]}")
