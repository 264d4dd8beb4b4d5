"""A family's dataset by seed, generator overrides and source, built once per process.

Every stage that needs a family's data (the task loaders, finetuning, augmentation, ``icl-gen generate``)
asks here, so they all see the same records for the same request and none of them imports the lm-eval glue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from icl_generalization.core.errors import UserError
from icl_generalization.data.families import DEFAULT_SEED, build
from icl_generalization.data.records import Dataset

# The one released dataset a family can be read from instead of generated: ``berglund:PATH``.
BERGLUND = "berglund"


@lru_cache(maxsize=16)
def _dataset(family: str, seed: int, overrides_json: str, source: str | None) -> Dataset:
    if source:
        kind, _, path = source.partition(":")
        if family == "reversal_curse" and kind == BERGLUND and path:
            from icl_generalization.data.families.reversal_curse.berglund import import_berglund

            return import_berglund(Path(path).expanduser(), seed=seed)
        raise UserError(f"data_source {source!r} is not understood for {family}; "
                        f"the reversal curse accepts {BERGLUND}:PATH")
    return build(family, seed=seed, overrides=json.loads(overrides_json))


def get_dataset(family: str, seed: int = DEFAULT_SEED, overrides: Mapping[str, object] | None = None,
                source: str | None = None) -> Dataset:
    """The dataset of ``family``: generated from ``seed`` and ``overrides``, or read from ``source``."""
    # The overrides travel as sorted JSON: a hashable key for the cache that two equal mappings share.
    return _dataset(family, int(seed), json.dumps(dict(overrides or {}), sort_keys=True), source)
