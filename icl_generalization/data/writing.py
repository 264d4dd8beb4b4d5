"""Writing a dataset folder: the JSONL records, the graph, dataset.json and the dataset card.

The card is for people: sizes, chance per split, examples, and the shortcut audit's closed-book table (no
model-free cue may answer an inference split), so whoever opens the folder sees how clean a test it is. The
card is not part of the fingerprint; dataset.json and the records are.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pydantic import JsonValue

from icl_generalization.core.digest import canonical_json
from icl_generalization.core.outputs import claim_folder
from icl_generalization.data.records import (
    CARD_FILE,
    GRAPH_FILE,
    META_FILE,
    TEST_FILE,
    TRAIN_FILE,
    Dataset,
    TestItem,
    TrainDoc,
    chance_rate,
    jsonable,
)
from icl_generalization.data.shortcuts import audit, closed_book_views, to_markdown


def _jsonl(records: Iterable[TrainDoc | TestItem]) -> str:
    return "".join(canonical_json(jsonable(r)) + "\n" for r in records)


def dataset_card(ds: Dataset, fp: str) -> str:
    per_split = Counter(item.split for item in ds.test)
    lines = [
        f"# Dataset card: {ds.family}",
        "",
        f"- generator version: `{ds.generator_version}`",
        f"- source: `{ds.source}`",
        f"- seed: `{ds.seed}`",
        f"- fingerprint (sha256): `{fp}`",
        f"- training documents: {len(ds.train)}"
        + (f" ({sum(d.kind == 'qa' for d in ds.train)} question-answer examples)" if ds.train else ""),
        f"- test items: {len(ds.test)}",
        "",
        "| split | items | choices per item | chance |",
        "|---|---|---|---|",
    ]
    for split, count in per_split.items():
        items = ds.items(split)
        n_choices = sorted({len(i.choices) for i in items})
        lines.append(f"| {split} | {count} | {', '.join(map(str, n_choices))} | {chance_rate(items):.3f} |")
    lines += ["", "## Config", "", "```json", json.dumps(dict(ds.config), indent=2, sort_keys=True), "```", ""]
    if ds.train:
        lines += ["## Example training document", "", f"> {ds.train[0].text}", ""]
    for split in per_split:
        item = ds.items(split)[0]
        lines += [f"## Example test item ({split})", "", f"Prompt: `{item.prompt}`", ""]
        lines += [f"- `{c}`" + (" (gold)" if i in item.gold else "") for i, c in enumerate(item.choices)]
        lines.append("")
    lines += ["## Shortcut audit (closed-book)", "", to_markdown(ds.family, audit(ds, closed_book_views(ds))), ""]
    return "\n".join(lines)


def write_dataset(ds: Dataset, out: Path) -> str:
    """Write ``ds`` to folder ``out``, which it claims (a new or empty folder, or one generate wrote before);
    each file lands through a temporary name and a rename. Returns the fingerprint."""
    fp = ds.fingerprint()
    meta = {
        "family": ds.family,
        "generator_version": ds.generator_version,
        "seed": ds.seed,
        "config": dict(ds.config),
        "source": ds.source,
        "fingerprint": fp,
        "counts": {"train": len(ds.train), "test": len(ds.test)},
        "splits": ds.splits,
    }
    inputs: dict[str, JsonValue] = {"family": ds.family, "seed": ds.seed, "config": dict(ds.config),
                                    "source": ds.source, "fingerprint": fp}
    with claim_folder(out, "generate", inputs) as folder:
        folder.write_text(TRAIN_FILE, _jsonl(ds.train))
        folder.write_text(TEST_FILE, _jsonl(ds.test))
        # The dataset.json is written last: it is what readers look for, so a folder whose write was cut
        # short is not mistaken for a finished dataset (and its fingerprint check catches a mix).
        if ds.graph is not None:
            folder.write_text(GRAPH_FILE, json.dumps(ds.graph, indent=1, sort_keys=True) + "\n")
        folder.write_text(CARD_FILE, dataset_card(ds, fp))
        folder.write_text(META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return fp
