"""The gate's tests and the compare's bootstrap intervals, cross-checked against scipy/statsmodels on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icl_generalization.analysis.bootstrap import (
    NOT_LOGGED,
    PAIRED,
    UNPAIRED,
    VS_CHANCE,
    BootstrapConfig,
    DifferenceCI,
    ItemScores,
    difference_ci,
)
from icl_generalization.analysis.gate import cluster_paired_t, holm_adjust, mcnemar_exact
from icl_generalization.core.errors import UserError

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 200), st.integers(0, 200))
def test_mcnemar_is_statsmodels_mcnemar_one_sided(losses: int, wins: int, both_right: int, both_wrong: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.proportion import binom_test

    p = mcnemar_exact(losses, wins)
    if losses + wins == 0:
        assert p == 1.0
        return
    # statsmodels' exact McNemar is two-sided; with more losses than wins the one-sided p is exactly half of it.
    if losses > wins:
        two_sided = mcnemar([[both_right, losses], [wins, both_wrong]], exact=True).pvalue
        assert p == pytest.approx(two_sided / 2, rel=1e-9, abs=1e-300)
    assert p == pytest.approx(binom_test(losses, losses + wins, 0.5, alternative="larger"), rel=1e-9, abs=1e-300)


def _holm_by_hand(p_values: list[float]) -> list[float]:
    """Holm's step-down procedure written out, as the reference the statsmodels call must match."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@FAST
@given(st.lists(st.floats(0.0, 1.0), max_size=12))
def test_holm_matches_the_step_down_procedure(p_values: list[float]) -> None:
    assert holm_adjust(p_values) == pytest.approx(_holm_by_hand(p_values), rel=1e-12, abs=1e-15)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(2, 12), st.integers(20, 120))
def test_cluster_t_matches_statsmodels_and_scipy(seed: int, n_clusters: int, n_items: int) -> None:
    import statsmodels.api as sm
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(seed)
    clusters = np.concatenate([np.arange(n_clusters), rng.integers(0, n_clusters, size=n_items - n_clusters)])
    drop = rng.random(n_clusters)[clusters] < 0.4  # whole clusters tend to lose together
    diffs = -(drop & (rng.random(n_items) < 0.7)).astype(float) + (rng.random(n_items) < 0.1)
    p = cluster_paired_t(diffs.tolist(), [f"c{c}" for c in clusters])
    if np.ptp(diffs) == 0:
        return  # no spread: covered by test_check's degenerate cases
    fit = sm.OLS(diffs, np.ones(n_items)).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    t_value = float(fit.tvalues[0])
    expected = float(fit.pvalues[0]) / 2 if t_value < 0 else 1 - float(fit.pvalues[0]) / 2
    assert p == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # One item per cluster: the cluster-robust test is the plain one-sample t-test (scipy).
    singletons = cluster_paired_t(diffs.tolist(), [str(i) for i in range(n_items)])
    assert singletons == pytest.approx(float(ttest_1samp(diffs, 0.0, alternative="less").pvalue), rel=1e-6)


# --- the bootstrap intervals of compare's differences ------------------------------------------------------------


def _paired_world(rng: np.random.Generator, n_clusters: int, per_cluster: int, gap: float) -> tuple[
        ItemScores, ItemScores]:
    """Two conditions scored on the same items; each fact has its own difficulty, shared by both conditions, so
    the two sides err together within a cluster (the case pairing and clustering are for)."""
    values_a, values_b, clusters = {}, {}, {}
    for c in range(n_clusters):
        ease = rng.uniform(0.2, 0.8)
        for i in range(per_cluster):
            key = f"f{c}-q{i}"
            u = rng.random()
            values_a[key], values_b[key] = float(u < min(1.0, ease + gap)), float(u < ease)
            clusters[key] = f"f{c}"
    return ItemScores(values_a, clusters, True), ItemScores(values_b, clusters, True)


def test_the_interval_is_deterministic_given_the_seed() -> None:
    a, b = _paired_world(np.random.default_rng(0), 15, 4, 0.15)
    first = difference_ci(a, b, BootstrapConfig(resamples=999, seed=7))
    assert isinstance(first, DifferenceCI) and first.method == PAIRED and first.units == 15
    assert difference_ci(a, b, BootstrapConfig(resamples=999, seed=7)) == first
    other = difference_ci(a, b, BootstrapConfig(resamples=999, seed=8))
    assert isinstance(other, DifferenceCI) and (other.low, other.high) != (first.low, first.high)
    assert first.low < a.mean - b.mean < first.high


def test_the_paired_interval_covers_the_true_difference() -> None:
    """Simulated paired data with a known gap: the 95% interval covers it in about 95% of worlds, and pairing
    makes it narrower than treating the two conditions' samples as independent."""
    rng = np.random.default_rng(2024)
    gap, worlds, covered, widths = 0.1, 120, 0, []
    config = BootstrapConfig(resamples=999, seed=1)
    for _ in range(worlds):
        a, b = _paired_world(rng, 20, 4, gap)
        ci = difference_ci(a, b, config)
        assert isinstance(ci, DifferenceCI)
        covered += ci.low <= gap <= ci.high
        widths.append(ci.high - ci.low)
    # Binomial(120, 0.95) falls below 105 with probability < 0.1%; a non-clustered interval covers far less.
    assert covered >= 105
    a, b = _paired_world(rng, 20, 4, gap)
    unpaired = difference_ci(a, ItemScores({f"x{k}": v for k, v in b.values.items()},
                                           {f"x{k}": c for k, c in b.clusters.items()}, True), config)
    assert isinstance(unpaired, DifferenceCI) and unpaired.method == UNPAIRED and unpaired.units == 40
    assert unpaired.high - unpaired.low > float(np.median(widths))


def test_resampling_whole_clusters_widens_the_interval() -> None:
    """Ten facts, eight questions each, the questions of a fact answered alike: ten observations, not eighty."""
    values = {f"f{c}-q{i}": float(c % 2) for c in range(10) for i in range(8)}
    clustered = ItemScores(values, {k: k.split("-")[0] for k in values}, True)
    items = ItemScores(values, {k: k for k in values}, False)
    config = BootstrapConfig(resamples=999)
    by_fact, by_item = difference_ci(clustered, 0.25, config), difference_ci(items, 0.25, config)
    assert isinstance(by_fact, DifferenceCI) and isinstance(by_item, DifferenceCI)
    assert (by_fact.method, by_fact.units, by_item.units, by_item.clustered) == (VS_CHANCE, 10, 80, False)
    assert by_fact.high - by_fact.low > 2 * (by_item.high - by_item.low)
    assert "(cluster bootstrap, chance fixed, 10 clusters, BCa)" in by_fact.text()
    assert "80 items (no clusters logged)" in by_item.text()


def test_what_has_no_interval_says_why() -> None:
    a, b = _paired_world(np.random.default_rng(3), 5, 2, 0.2)
    config = BootstrapConfig(resamples=999)
    assert difference_ci(a, None, config) == difference_ci(None, 0.25, config) == NOT_LOGGED
    assert NOT_LOGGED == "no CI (samples not logged)"
    assert difference_ci("a foreign log", b, config) == "no CI (a foreign log)"
    one = ItemScores({"x": 1.0, "y": 0.0}, {"x": "p", "y": "p"}, True)
    assert difference_ci(one, 0.5, config) == "no CI (one cluster)"
    same = difference_ci(a, a, config)  # no item differs: every resample says 0
    assert isinstance(same, DifferenceCI) and (same.low, same.high) == (0.0, 0.0)
    # Chance on the left is the right-hand interval negated.
    forward, backward = difference_ci(a, 0.3, config), difference_ci(0.3, a, config)
    assert isinstance(forward, DifferenceCI) and isinstance(backward, DifferenceCI)
    assert (backward.low, backward.high) == (-forward.high, -forward.low)
    with pytest.raises(UserError, match="resamples"):
        BootstrapConfig(resamples=10)
    with pytest.raises(UserError, match="level"):
        BootstrapConfig(level=1.5)
    assert math.isfinite(forward.low)
