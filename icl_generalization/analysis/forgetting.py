"""The forgetting control's change: a condition's accuracy on knowledge the base model had, minus the pretrained.

Both scores come from the same shipped questions, so the change is taken item by item: the mean of the per-item
differences, with a standard error clustered by the entity the items are about (a finetune that erased what the
model knew about one country moves all of that country's answers at once). Pairing removes the between-item
variance both runs share, so it is much tighter than the difference of two means. Without two per-sample logs
with clusters the difference of the means stands in, with independent standard errors (an overstatement of the
noise, since the two runs share their items), marked as unpaired.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from icl_generalization.analysis.results import Sample, clusters_of
from icl_generalization.data.clustering import clustered_se

PAIRED, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class Change:
    """A condition's control accuracy minus the same model's pretrained one."""

    value: float
    stderr: float | None
    kind: str  # PAIRED (per-item differences, clustered) or UNPAIRED (difference of means)
    n: int  # items compared (paired: those both runs scored)
    clusters: int | None = None

    def label(self) -> str:
        return f"paired, {self.clusters} clusters" if self.kind == PAIRED else UNPAIRED


def paired_change(current: Mapping[str, Sample], baseline: Mapping[str, Sample], metric: str) -> Change | None:
    """The mean per-item difference over the items both logs scored, clustered by entity; None when the logs
    cannot be paired (no clusters, no common item, a metric missing, or items that disagree on their cluster)."""
    now, before = clusters_of(current), clusters_of(baseline)
    if now is None or before is None:
        return None
    common = sorted(set(now) & set(before))
    if not common or any(now[key] != before[key] for key in common):
        return None
    diffs = []
    for key in common:
        a, b = current[key].metrics.get(metric), baseline[key].metrics.get(metric)
        if a is None or b is None:
            return None
        diffs.append(a - b)
    groups = [now[key] for key in common]
    se = clustered_se(diffs, groups)
    return Change(sum(diffs) / len(diffs), None if math.isnan(se) else se, PAIRED, len(common), len(set(groups)))


def unpaired_change(value: float, stderr: float | None, base: float, base_stderr: float | None, n: int) -> Change:
    se = math.sqrt(stderr**2 + base_stderr**2) if stderr is not None and base_stderr is not None else None
    return Change(value - base, se, UNPAIRED, n)
