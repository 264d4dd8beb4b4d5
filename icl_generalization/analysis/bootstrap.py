"""Confidence intervals for the difference of two leaderboard cells: a cluster bootstrap with scipy.

Items that test one fact (a fictional person, a premise pair, a category) are not independent, so the bootstrap
resamples **clusters**, each with all of its items, not single items. When both cells scored the same items
(two conditions, or two models, on one split), the resampling is **paired**: one draw of clusters serves both
sides, so each item keeps its two outcomes together and the interval reflects the noise of the difference, not
of two separate scores (the two sides usually err on the same hard items, which makes it narrower than the
independent errors' combination). Cells on different items (two splits) are resampled independently, and a
cell set against chance is a one-sample bootstrap of its score minus that constant.

``scipy.stats.bootstrap`` resamples the observations of 1-D samples. Clusters have unequal sizes, so the
sample handed to scipy is the cluster indices and the statistic reads each drawn cluster's totals (score sum
and item count): a ratio of sums, which is the item mean of the resampled items, exactly the number the
leaderboard shows. ``paired=True`` with one index sample per side would draw the same indices for both; one
shared index sample does the same more simply. The interval is scipy's BCa (bias-corrected and accelerated,
its default); when BCa is undefined (the jackknife has no spread) the percentile interval of the same
resamples is given and named. The seed is fixed, so the same logs give the same interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from icl_generalization.core.errors import UserError

PAIRED, UNPAIRED, VS_CHANCE = ("paired cluster bootstrap", "unpaired cluster bootstrap",
                               "cluster bootstrap, chance fixed")
NOT_LOGGED = "no CI (samples not logged)"


@dataclass(frozen=True)
class BootstrapConfig:
    resamples: int = 9999  # scipy's default
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.resamples < 100:
            raise UserError(f"bootstrap resamples must be at least 100, got {self.resamples}")
        if not 0 < self.level < 1:
            raise UserError(f"bootstrap confidence level must be between 0 and 1, got {self.level}")


@dataclass(frozen=True)
class ItemScores:
    """One cell's per-item scores from its per-sample log, with the fact each item tests."""

    values: Mapping[str, float]  # item key -> the metric's per-item value
    # item key -> cluster; the item's own key when the log names no clusters (items are then the units)
    clusters: Mapping[str, str]
    clustered: bool

    @property
    def mean(self) -> float:
        return sum(self.values.values()) / len(self.values)


@dataclass(frozen=True)
class DifferenceCI:
    low: float
    high: float
    method: str  # PAIRED, UNPAIRED or VS_CHANCE
    interval: str  # "BCa" or "percentile"
    units: int  # clusters (or items) resampled, both sides together when unpaired
    clustered: bool  # False: the log named no clusters, so single items were resampled
    resamples: int
    seed: int
    level: float

    def text(self) -> str:
        unit = "clusters" if self.clustered else "items (no clusters logged)"
        return f"[{self.low:+.3f}, {self.high:+.3f}] ({self.method}, {self.units} {unit}, {self.interval})"


def _totals(scores: ItemScores) -> tuple[Any, Any, list[str]]:
    """Per-cluster score sums and item counts, clusters in first-seen order."""
    import numpy as np

    labels = list(dict.fromkeys(scores.clusters[k] for k in scores.values))
    index = {label: i for i, label in enumerate(labels)}
    sums, counts = np.zeros(len(labels)), np.zeros(len(labels))
    for key, value in scores.values.items():
        sums[index[scores.clusters[key]]] += value
        counts[index[scores.clusters[key]]] += 1
    return sums, counts, labels


def _bootstrap(samples: tuple[Any, ...], statistic: Callable[..., Any], config: BootstrapConfig) -> tuple[
        float, float, str]:
    import numpy as np
    from scipy.stats import bootstrap

    kwargs: dict[str, Any] = {"vectorized": True, "paired": False, "confidence_level": config.level}
    with warnings.catch_warnings():
        # A degenerate BCa (no spread in the jackknife) warns and returns NaN: handled below.
        warnings.simplefilter("ignore", RuntimeWarning)
        res = bootstrap(samples, statistic, n_resamples=config.resamples, rng=np.random.default_rng(config.seed),
                        **kwargs)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isfinite(low) and np.isfinite(high):
        return low, high, "BCa"
    dist = res.bootstrap_distribution
    if float(np.ptp(dist)) == 0.0:  # every resample gives the same difference: the interval is that point
        return float(dist.flat[0]), float(dist.flat[0]), "percentile"
    # The same resamples, read as a percentile interval (no new draws).
    res = bootstrap(samples, statistic, n_resamples=0, bootstrap_result=res, method="percentile", **kwargs)
    return float(res.confidence_interval.low), float(res.confidence_interval.high), "percentile"


def legend(config: BootstrapConfig) -> str:
    return (f"{config.level:.0%} CI of the difference: cluster bootstrap of the per-sample logs "
            f"(scipy.stats.bootstrap over the clusters, each with all its items; paired when both cells scored "
            f"the same items), {config.resamples} resamples, seed {config.seed}.")


def difference_ci(left: ItemScores | str | float | None, right: ItemScores | str | float | None,
                  config: BootstrapConfig) -> DifferenceCI | str:
    """The ``config.level`` interval of ``left``'s mean minus ``right``'s (a float: a constant such as chance),
    or why there is none (``"no CI (...)"``): a side without a per-sample log, a log that is not the cell's
    (``str``: the leaderboard's reason), or a single cluster."""
    import numpy as np

    if left is None or right is None:
        return NOT_LOGGED
    if isinstance(left, str) or isinstance(right, str):
        return f"no CI ({left if isinstance(left, str) else right})"
    if not isinstance(left, ItemScores):
        if not isinstance(right, ItemScores):
            return "no CI (two constants)"
        # A constant minus a score: the score's interval against the constant, negated.
        flipped = difference_ci(right, left, config)
        return flipped if isinstance(flipped, str) else replace(flipped, low=-flipped.high, high=-flipped.low)
    l_sums, l_counts, l_labels = _totals(left)
    if not isinstance(right, ItemScores):
        constant = float(right)
        if len(l_labels) < 2:
            return "no CI (one cluster)"
        low, high, interval = _bootstrap(
            (np.arange(len(l_labels)),),
            lambda i, axis=-1: l_sums[i].sum(axis) / l_counts[i].sum(axis) - constant, config)
        return DifferenceCI(low, high, VS_CHANCE, interval, len(l_labels), left.clustered, config.resamples,
                            config.seed, config.level)
    if set(left.values) == set(right.values):
        # The same items: label them once (a side without clusters borrows the other's), one shared draw.
        clusters = left.clusters if left.clustered or not right.clustered else right.clusters
        diffs = ItemScores({k: left.values[k] - right.values[k] for k in left.values}, clusters,
                           left.clustered or right.clustered)
        d_sums, d_counts, labels = _totals(diffs)
        if len(labels) < 2:
            return "no CI (one cluster)"
        low, high, interval = _bootstrap(
            (np.arange(len(labels)),), lambda i, axis=-1: d_sums[i].sum(axis) / d_counts[i].sum(axis), config)
        return DifferenceCI(low, high, PAIRED, interval, len(labels), diffs.clustered, config.resamples,
                            config.seed, config.level)
    r_sums, r_counts, r_labels = _totals(right)
    if min(len(l_labels), len(r_labels)) < 2:
        return "no CI (one cluster)"
    low, high, interval = _bootstrap(
        (np.arange(len(l_labels)), np.arange(len(r_labels))),
        lambda i, j, axis=-1: l_sums[i].sum(axis) / l_counts[i].sum(axis) - r_sums[j].sum(axis) / r_counts[j].sum(
            axis), config)
    return DifferenceCI(low, high, UNPAIRED, interval, len(l_labels) + len(r_labels),
                        left.clustered and right.clustered, config.resamples, config.seed, config.level)
