"""The lm-eval documents of a forgetting control, and the provenance its results record.

A control is asked closed-book only and its items ship with the package, so nothing is generated or sized
here; the rows have the shape of every other task's (``rows.Row``), and the provenance names the control,
its source and version, and the fingerprint a leaderboard refuses to mix.
"""

from __future__ import annotations

from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.controls import get_control
from icl_generalization.tasks.rows import Provenance, Row, TaskRows


def control_rows(name: str) -> TaskRows:
    spec = get_control(name)
    control_set = spec.load()
    header = control_set.header
    # Interleaved by entity, as the families' rows are: `--limit N` then asks about as many countries as it can.
    items = interleave_by_cluster(control_set.items, spec.cluster_of)
    fingerprint = control_set.fingerprint()
    rows: list[Row] = [{
        "id": item.id, "split": item.split, "query": item.prompt, "prompt": item.prompt,
        "choices": list(item.choices), "gold": list(item.gold), "fingerprint": fingerprint,
        "cluster": spec.cluster_of(item), "context_tokens": 0, "context_docs": 0, "shard": -1,
    } for item in items]
    provenance: Provenance = {
        "control": name, "condition": "closed_book", "fingerprint": fingerprint,
        "source": header.source, "source_version": header.version, "n_items": len(items),
        "n_prompts": len({item.prompt for item in items}), "chance": round(control_set.chance, 6),
    }
    return TaskRows(rows, provenance)
