"""Items that test the same fact are not independent: cluster-robust standard errors and cluster-spread orderings.

Several questions ask about one person, one comparison, one premise pair or one category. A per-item binomial
standard error treats them as independent draws and so understates the noise of any score over them; the
cluster-robust (sandwich) estimator sums residuals within each cluster first. It comes from statsmodels: an
OLS of the per-item values on a constant with ``cov_type="cluster"`` (CR1, with statsmodels' small-sample
factors), whose coefficient is the mean and whose standard error is the clustered one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def clustered_mean_fit(values: Sequence[float], clusters: Sequence[Hashable]) -> Any | None:
    """statsmodels' cluster-robust fit of ``values`` on a constant (the coefficient is their mean), with t
    inference on G - 1 degrees of freedom; None when there are fewer than two clusters (no clustered error)."""
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    codes = {label: i for i, label in enumerate(dict.fromkeys(clusters))}
    if len(codes) < 2:
        return None
    import numpy as np
    from statsmodels.regression.linear_model import OLS

    groups = np.fromiter((codes[c] for c in clusters), dtype=np.int64, count=len(clusters))
    y = np.asarray(values, dtype=float)
    return OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)


def clustered_se(values: Sequence[float], clusters: Sequence[Hashable]) -> float:
    """Cluster-robust (CR1) standard error of the mean of ``values``; NaN when there are fewer than two clusters."""
    fit = clustered_mean_fit(values, clusters)
    return math.nan if fit is None else float(fit.bse[0])


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
