"""The shortcut audit: cluster-robust errors, cluster interleaving, the baselines and the check-data wiring."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import BERGLUND

from icl_generalization.cli import main
from icl_generalization.data.clustering import clustered_se, interleave_by_cluster
from icl_generalization.data.families import build
from icl_generalization.data.records import CARD_FILE, META_FILE, Dataset, TestItem, TrainDoc, read_dataset
from icl_generalization.data.shortcut_baselines import Corpus, Evidence, atmosphere, choose, credit
from icl_generalization.data.shortcuts import (
    Finding,
    View,
    audit,
    closed_book_views,
    failures,
)

# --- statistics ----------------------------------------------------------------------------------------------


def test_clustered_se_is_cr1() -> None:
    """The statsmodels call is the documented CR1 estimator: G/(G-1) sum_g (sum_i (y_i - mean))^2 / N^2."""
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 17, size=200)
    # Correlated within a cluster, so the clustered error is far from the independent one.
    values = (rng.random(200) < 0.3 + 0.4 * (clusters % 2)).astype(float)
    residual_sums = np.bincount(clusters, weights=values - values.mean())
    g = len(set(clusters.tolist()))
    cr1 = math.sqrt(g / (g - 1) * float((residual_sums ** 2).sum())) / 200
    assert clustered_se(values.tolist(), clusters.tolist()) == pytest.approx(cr1, rel=1e-9)
    assert cr1 > 1.3 * float(values.std(ddof=1)) / math.sqrt(200)  # the clustering matters here


def test_clustered_se_by_hand() -> None:
    # Singleton clusters: the CR1 error is the sample standard deviation over sqrt(n).
    values = [1.0, 0.0, 0.0, 1.0, 1.0]
    assert clustered_se(values, list(range(5))) == pytest.approx(float(np.std(values, ddof=1)) / math.sqrt(5))
    # Two clusters (1, 1) and (0, 0): residual sums 1 and -1 -> sqrt(2/1 * 2) / 4.
    assert clustered_se([1.0, 1.0, 0.0, 0.0], ["a", "a", "b", "b"]) == pytest.approx(0.5)
    assert math.isnan(clustered_se([1.0, 0.0], ["a", "a"]))
    with pytest.raises(ValueError, match="cluster labels"):
        clustered_se([1.0], ["a", "b"])


def test_interleave_by_cluster_spreads_every_prefix() -> None:
    rng = random.Random(3)
    items = sorted((rng.choice("abcdefg"), i) for i in range(60))  # grouped by cluster, as generators write them
    ordered = interleave_by_cluster(items, key=lambda x: x[0])
    assert sorted(ordered) == sorted(items)
    n_clusters = len({c for c, _ in items})
    for k in range(1, len(ordered) + 1):
        assert len({c for c, _ in ordered[:k]}) == min(k, n_clusters)
    for cluster in "abcdefg":  # each cluster keeps its own order
        assert [x for x in ordered if x[0] == cluster] == [x for x in items if x[0] == cluster]


# --- baselines -----------------------------------------------------------------------------------------------


def test_ties_share_credit() -> None:
    item = TestItem(id="q", split="s", prompt="p", choices=(" a", " b", " c", " d"), gold=(1,))
    assert credit(item, choose([0.0, 0.0, 0.0, 0.0])) == 0.25
    assert credit(item, choose([0.0, 2.0, 2.0, 1.0])) == 0.5
    assert credit(item, choose([5.0, 2.0, 2.0, 1.0])) == 0.0


def test_atmosphere_copies_the_dominant_quantifier() -> None:
    training = Corpus(["The relationships between tarb, trirm and soosk are: Some soosk are tarb. All trirm are soosk.",
                       "Unrelated: No blick are frump."])
    item = TestItem(id="q", split="conclusion", prompt="The relationships between tarb and trirm are:",
                    choices=(" All tarb are trirm.", " No tarb are trirm.", " Some tarb are trirm."), gold=(2,))
    assert atmosphere(item, Evidence(training, Corpus([]))) == [0.0, 0.0, 1.0]


def test_detects_the_known_shortcuts_of_the_current_data() -> None:
    syllogism = build("syllogism")
    found = {(f.baseline, f.split): f for f in audit(syllogism, closed_book_views(syllogism))}
    atmos = found[("atmosphere (training premises)", "conclusion")]
    assert atmos.accuracy >= 0.9 and atmos.chance == pytest.approx(0.316, abs=1e-3)
    # The study's split is kept for reproduction and claims no inference; its balanced sibling does, and passes.
    assert atmos.verdict.startswith("above chance")
    assert found[("starts with 'no'", "conclusion")].accuracy == pytest.approx(0.449, abs=1e-3)
    assert found[("atmosphere (training premises)", "balanced")].verdict == "ok"


def test_presence_in_a_short_context_is_caught() -> None:
    # The sweep shortcut: only the gold is in the context, so "pick what the context mentions" wins.
    items = tuple(TestItem(id=f"q{i}", split="p2d_reverse", prompt=f"Who directed film{i}?",
                           choices=tuple(f" Person{j}x{i}" for j in range(4)), gold=(i % 4,),
                           entities=(f"Person{i % 4}x{i}",)) for i in range(40))
    contexts = tuple(f"Person{i % 4}x{i} directed something.\n" for i in range(40))
    ds = Dataset(family="reversal_curse", generator_version="t", seed=0, config={}, train=(), test=items)
    found = {f.baseline: f for f in audit(ds, [View("p2d_reverse", "icl_sweep 256", items, contexts)])}
    assert found["present in context"].accuracy == 1.0
    assert found["present in context"].verdict == "FAIL"


def _planted_clean() -> Dataset:
    """Every cue balanced: equal-length options each asked equally often in every position, each named in the
    subject's document, which names all four options; no quantifiers; gold spread over positions."""
    words = ["blick", "dranp", "fleem", "gorpy"]
    subjects = [f"zo{chr(97 + a)}{chr(97 + b)}" for a in range(4) for b in range(6)]
    train, test = [], []
    for k, subject in enumerate(subjects):
        doc = TrainDoc(id=f"doc{k}", text=f"The {subject} is near the {', the '.join(words)}.")
        train.append(doc)
        for r in range(4):
            rotation = words[r:] + words[:r]
            test.append(TestItem(id=f"q{k}-{r}", split="conclusion", prompt=f"The {subject} points at the",
                                 choices=tuple(f" {w}." for w in rotation), gold=((k + r) % 4,),
                                 needs=((doc.id,),)))
    return Dataset(family="syllogism", generator_version="t", seed=0, config={}, train=tuple(train), test=tuple(test))


def test_a_planted_clean_dataset_passes() -> None:
    ds = _planted_clean()
    contexts = tuple("".join(d.text + "\n" for d in ds.train) for _ in ds.test)
    findings = audit(ds, [*closed_book_views(ds), View("conclusion", "icl", ds.test, contexts)])
    assert findings, "the position baselines separate the options and must be scored"
    assert failures(findings) == []
    assert {f.n_clusters for f in findings} == {24}  # clustered by premise document, not by item


# --- wiring --------------------------------------------------------------------------------------------------


def test_check_data_shortcuts_reports_the_study_syllogisms_and_keeps_the_fingerprint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "syllogism"
    assert main(["generate", "syllogism", "--out", str(folder)]) == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert "## Shortcut audit: syllogism" in (folder / CARD_FILE).read_text(encoding="utf-8")  # generate wrote it
    assert main(["check-data", str(folder)]) == 0  # the closed-book audit runs by default; balanced passes
    out = capsys.readouterr().out
    assert "| conclusion | closed_book | atmosphere (training premises) | 0.949 |" in out
    assert main(["check-data", str(folder), "--shortcuts", "none"]) == 0
    assert "atmosphere" not in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # check-data only reads
    meta = before[META_FILE]
    assert read_dataset(folder).fingerprint() == json.loads(meta)["fingerprint"]


def test_finding_without_clusters_is_untestable() -> None:
    f = Finding("b", "s", "closed_book", 1.0, 0.25, math.nan, 3, 1, True)
    assert f.verdict == "UNTESTABLE" and failures([f])


@pytest.mark.slow
def test_in_context_views_are_the_task_prompts() -> None:
    from icl_generalization.tasks.audit_views import in_context_views

    ds = build("syllogism")
    views = in_context_views(ds)
    icl = next(v for v in views if v.condition == "icl")
    assert all(c.startswith("Read the following documents") for c in icl.contexts)
    needed = ds.doc_index()[icl.items[0].needs[0][0]].text
    assert needed in icl.contexts[0]
    assert any(v.condition.startswith("icl_sweep ") for v in views)


@pytest.mark.slow
def test_an_imported_berglund_folder_is_audited_in_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The importer records the folder it read (resolved), so the in-context tasks, and the audit that builds
    # their prompts, re-import the same release rather than failing on a bare folder name.
    folder = tmp_path / "berglund"
    assert main(["generate", "reversal_curse", "--source", f"berglund:{BERGLUND}", "--out", str(folder)]) == 0
    assert json.loads((folder / META_FILE).read_text(encoding="utf-8"))["source"] == f"berglund:{BERGLUND.resolve()}"
    capsys.readouterr()
    assert main(["check-data", str(folder), "--shortcuts", "all"]) == 0
    out = capsys.readouterr().out
    assert "| p2d_reverse | icl |" in out and "| p2d_reverse | icl_sweep 8192 |" in out
