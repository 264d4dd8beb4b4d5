"""The shortcut audit: do model-free baselines beat chance on a dataset's splits, in each condition?

A split that claims to test inference (a reversal, a syllogism, a held-out category) is only a clean test if
nothing but the inference gets a model above chance. So every baseline of ``shortcut_baselines`` is scored on
every split under every condition a model meets it in (closed-book: the question and the training documents;
in context: the exact prompt text the task builds, at each sweep length too). A baseline above chance by more
than ``Z`` cluster-robust standard errors FAILS a split that claims inference and is reported on a direct-fact
split (where recalling the fact by association *is* the skill tested).

Errors are clustered by the fact an item tests (person, comparison, premise pair, category): questions about
one fact stand or fall together, so counting them as independent would make a lucky cue look significant.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from icl_generalization.data.clustering import clustered_se
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.records import Dataset, TestItem, chance_rate
from icl_generalization.data.shortcut_baselines import (
    BASELINES,
    RECALL,
    Corpus,
    Evidence,
    choose,
    credit,
    first_word_baselines,
)

Z = 2.0
CLOSED_BOOK = "closed_book"

def cluster_key(family: str, item: TestItem) -> str:
    """The fact ``item`` tests; an unknown family's items count as independent."""
    spec = FAMILIES.get(family)
    return spec.cluster_of(item) if spec is not None else item.id


def _inference_splits(family: str) -> frozenset[str]:
    spec = FAMILIES.get(family)
    return spec.inference_splits if spec is not None else frozenset()


def _reversal_splits(family: str) -> frozenset[str]:
    spec = FAMILIES.get(family)
    return spec.reversal_splits if spec is not None else frozenset()


@dataclass(frozen=True)
class View:
    """One split under one condition: its items and, for each, the text a model reads before the prompt."""

    split: str
    condition: str
    items: tuple[TestItem, ...]
    contexts: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.items) != len(self.contexts):
            raise ValueError(f"view {self.split}/{self.condition}: {len(self.items)} items, {len(self.contexts)} "
                             "contexts")


def closed_book_views(ds: Dataset) -> list[View]:
    return [View(split, CLOSED_BOOK, tuple(items), ("",) * len(items))
            for split in ds.splits for items in [ds.items(split)]]


@dataclass(frozen=True)
class Finding:
    baseline: str
    split: str
    condition: str
    accuracy: float
    chance: float
    se: float  # cluster-robust standard error of (accuracy - chance); NaN under two clusters
    n_items: int
    n_clusters: int
    claims_inference: bool
    # A recall baseline on a reversal split: it reads the stated fact in either order, which the split allows.
    recall: bool = False

    @property
    def above_chance(self) -> bool:
        return self.accuracy - self.chance > Z * self.se if not math.isnan(self.se) else False

    @property
    def verdict(self) -> str:
        if math.isnan(self.se):
            return "UNTESTABLE"  # fewer than two clusters: no standard error, so no verdict
        if not self.above_chance:
            return "ok"
        if self.recall:
            return "above chance (recall of the stated fact: reported)"
        return "FAIL" if self.claims_inference else "above chance (direct split: reported)"


def _line_corpus(text: str) -> Corpus:
    return Corpus([line for line in text.splitlines() if line.strip()])


def audit_view(family: str, view: View, training: Corpus) -> list[Finding]:
    """Score every baseline on one view; a baseline that ties all options of every item is left out (no signal)."""
    items = view.items
    split_counts = Counter(c for item in items for c in item.choices)
    corpora: dict[str, Corpus] = {}  # items of one shard share their context verbatim: index it once
    for ctx in view.contexts:
        if ctx not in corpora:
            corpora[ctx] = _line_corpus(ctx)
    evidence = [Evidence(training, corpora[ctx], split_counts) for ctx in view.contexts]
    clusters = [cluster_key(family, item) for item in items]
    chances = [len(item.gold) / len(item.choices) for item in items]
    findings = []
    for name, baseline in {**BASELINES, **first_word_baselines(items)}.items():
        chosen = [choose(baseline(item, ev)) for item, ev in zip(items, evidence, strict=True)]
        if all(len(c) == len(item.choices) for c, item in zip(chosen, items, strict=True)):
            continue
        credits = [credit(item, c) for item, c in zip(items, chosen, strict=True)]
        excess = [c - p for c, p in zip(credits, chances, strict=True)]
        findings.append(Finding(
            baseline=name, split=view.split, condition=view.condition, accuracy=sum(credits) / len(items),
            chance=chance_rate(items), se=clustered_se(excess, clusters), n_items=len(items),
            n_clusters=len(set(clusters)), claims_inference=view.split in _inference_splits(family),
            recall=name in RECALL and view.split in _reversal_splits(family)))
    return findings


def audit(ds: Dataset, views: Sequence[View]) -> list[Finding]:
    """Every baseline on every view of ``ds`` (the closed-book views come from :func:`closed_book_views`)."""
    training = Corpus([doc.text for doc in ds.train], [doc.id for doc in ds.train])
    return [finding for view in views if view.items for finding in audit_view(ds.family, view, training)]


def failures(findings: Sequence[Finding]) -> list[str]:
    """One problem line per failing or untestable finding (the check's verdict)."""
    return [f"shortcut: {f.baseline!r} scores {f.accuracy:.3f} on {f.split} ({f.condition}) against chance "
            f"{f.chance:.3f} (clustered SE {f.se:.3f}, {f.n_clusters} clusters): {f.verdict}"
            for f in findings if f.verdict in ("FAIL", "UNTESTABLE")]


def to_markdown(family: str, findings: Sequence[Finding]) -> str:
    """The audit table of one dataset, worst excess over chance first within each split and condition."""
    inference = ", ".join(sorted(_inference_splits(family))) or "none"
    lines = [
        f"## Shortcut audit: {family}", "",
        f"Model-free baselines per split and condition. A baseline more than {Z:g} cluster-robust standard "
        f"errors above chance FAILS a split that claims inference ({inference}) and is reported on the others; "
        "on a reversal split, co-occurrence with the question in the documents stating the fact is that fact read "
        "in either order and is reported (co-occurrence outside those documents still fails). "
        "Ties are shared (expected accuracy over the tied options); baselines that never separate the options "
        "of a view are left out.", "",
        "| split | condition | baseline | accuracy | chance | clustered SE | clusters | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {(f.split, f.condition): i for i, f in reversed(list(enumerate(findings)))}
    for f in sorted(findings, key=lambda f: (order[(f.split, f.condition)], f.chance - f.accuracy, f.baseline)):
        se = "n/a" if math.isnan(f.se) else f"{f.se:.3f}"
        verdict = f"**{f.verdict}**" if f.verdict in ("FAIL", "UNTESTABLE") else f.verdict
        lines.append(f"| {f.split} | {f.condition} | {f.baseline} | {f.accuracy:.3f} | {f.chance:.3f} | {se} | "
                     f"{f.n_clusters} | {verdict} |")
    return "\n".join(lines) + "\n"


