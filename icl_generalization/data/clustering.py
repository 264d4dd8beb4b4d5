"""Items that test the same fact are not independent: cluster-robust standard errors and cluster-spread orderings.

Several questions ask about one person, one comparison, one premise pair or one category. A per-item binomial
standard error treats them as independent draws and so understates the noise of any score over them; the
cluster-robust (sandwich) estimator below sums residuals within each cluster first. It is the CR1 estimator that
statsmodels computes for ``OLS(y, ones).fit(cov_type="cluster", cov_kwds={"groups": g})`` (a test checks the
two agree), written out so that the data stage does not depend on statsmodels.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def clustered_se(values: Sequence[float], clusters: Sequence[Hashable]) -> float:
    """Cluster-robust standard error of the mean of ``values``; NaN when there are fewer than two clusters.

    CR1: ``var = G/(G-1) * (N-1)/(N-K) * sum_g (sum_{i in g} (y_i - mean))^2 / N^2`` with K = 1 parameter (the
    mean), the small-sample factors statsmodels applies by default.
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    n = len(values)
    if n == 0:
        return math.nan
    mean = sum(values) / n
    sums: dict[Hashable, float] = defaultdict(float)
    for value, cluster in zip(values, clusters, strict=True):
        sums[cluster] += value - mean
    g = len(sums)
    if g < 2:
        return math.nan
    meat = sum(s * s for s in sums.values())
    # With K = 1 the factor (N-1)/(N-K) is 1; it is kept in the docstring to name the estimator.
    return math.sqrt(g / (g - 1) * meat) / n


def interleave_by_cluster(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """Round-robin over clusters (in first-seen order), so every prefix covers as many clusters as it can.

    ``--limit N`` evaluates the first N items; on data grouped by fact that would ask N questions about a handful
    of facts. After interleaving, a prefix of length k spans min(k, number of clusters) clusters, and each
    cluster's own items keep their order.
    """
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    depth = max((len(g) for g in groups.values()), default=0)
    return [group[i] for i in range(depth) for group in groups.values() if i < len(group)]
