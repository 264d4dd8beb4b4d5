"""In-context prompts carry every option's document; rows are interleaved by cluster and name their cluster."""

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import JsonValue

from icl_generalization.core.errors import ContextBudgetError
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.load import get_dataset
from icl_generalization.data.records import TestItem, TrainDoc
from icl_generalization.data.shortcut_baselines import Corpus
from icl_generalization.data.shortcuts import View, audit_view
from icl_generalization.tasks.context import CONTEXT_VERSION, HEADER, INSTRUCTION, ContextBuilder, Shard
from icl_generalization.tasks.options import TaskOptions
from icl_generalization.tasks.rows import task_rows
from icl_generalization.tasks.sweep import sweep_rows

SMALL: dict[str, JsonValue] = {"people_per_set": 4, "train_templates": 2}
# Ten people: a question's four options name four of them, so shards differ.
MEDIUM: dict[str, JsonValue] = {"people_per_set": 10, "train_templates": 2}


def _words(text: str) -> int:
    return len(text.split())


def _context_corpus(shard: Shard) -> Corpus:
    return Corpus([line for line in shard.context.splitlines() if line.strip()])


def _absent_options(shards: Sequence[Shard], items: Sequence[TestItem]) -> list[tuple[str, str]]:
    by_id = {item.id: item for item in items}
    absent = []
    for shard in shards:
        corpus = _context_corpus(shard)
        absent += [(item_id, option) for item_id in shard.item_ids for option in by_id[item_id].choices
                   if not corpus.docs_with(option)]
    return absent


@pytest.mark.parametrize("budget", [120, 150])
def test_every_shard_mentions_every_option_of_its_questions(budget: int) -> None:
    ds = get_dataset("reversal_curse", overrides=MEDIUM)
    items = ds.items("p2d_reverse")
    shards = ContextBuilder(ds.train, _words, budget, random.Random(0), mode="shard").plan(items)
    assert len(shards) > 1 and sorted(i for s in shards for i in s.item_ids) == sorted(i.id for i in items)
    assert _absent_options(shards, items) == []
    # ...while the facts each question needs are still there.
    docs = ds.doc_index()
    for shard in shards:
        for item in (i for i in items if i.id in shard.item_ids):
            assert all(any(docs[d].text in shard.context for d in group) for group in item.needs), item.id


def test_the_subsample_mentions_every_option() -> None:
    ds = get_dataset("reversal_curse", overrides={"people_per_set": 10, "train_templates": 10})
    items = ds.items("p2d_reverse")
    builder = ContextBuilder(ds.train, _words, 20_000, random.Random(0), mode="subsample")
    shards = builder.plan(items)
    assert [s.strategy for s in shards] == ["subsample"] and len(shards[0].doc_ids) < len(ds.train)
    assert _absent_options(shards, items) == []


def test_presence_in_context_no_longer_picks_the_gold() -> None:
    """Before, a short context held the gold's document and rarely a distractor's: "present in context" scored
    far above chance. Now every option is present (in a context this short, equally often), so neither baseline
    can separate the options at all."""
    ds = get_dataset("reversal_curse", overrides=MEDIUM)
    items = ds.items("p2d_reverse")
    shards = ContextBuilder(ds.train, _words, 150, random.Random(0), mode="shard").plan(items)
    assert len(shards) > 1
    by_id = {item.id: item for item in items}
    view_items = tuple(by_id[i] for s in shards for i in s.item_ids)
    contexts = tuple(s.context for s in shards for _ in s.item_ids)
    view = View("p2d_reverse", "icl", view_items, contexts)
    training = Corpus([d.text for d in ds.train], [d.id for d in ds.train])
    names = {f.baseline for f in audit_view("reversal_curse", view, training)}
    # A baseline that ties every option of every item is left out of the audit (it carries no signal).
    assert "present in context" not in names
    assert "count in context" not in names


def test_a_budget_that_holds_the_facts_but_not_the_options_is_an_error() -> None:
    docs = [TrainDoc("fact", "Ann flies the Zeta."), TrainDoc("bob", "Bob was born in a long quiet town far away."),
            TrainDoc("cy", "Cy sails the Orca.")]
    item = TestItem("q", "s", "The Zeta is flown by", (" Ann", " Bob"), (0,), needs=(("fact",),))
    # Room for the fact (4 words) but not for Bob's document (10 words) as well.
    budget = _words(HEADER + INSTRUCTION) + _words(item.prompt + " Ann") + 2 + 9
    with pytest.raises(ContextBudgetError, match="ones mentioning each option as often"):
        ContextBuilder(docs, _words, budget, random.Random(0), mode="shard").plan([item])
    shard = ContextBuilder(docs, _words, budget + 10, random.Random(0), mode="shard").plan([item])[0]
    assert {"fact", "bob"} <= set(shard.doc_ids)


def _clusters_in_prefixes(clusters: Sequence[str]) -> list[int]:
    return [len(set(clusters[:k])) for k in range(1, len(clusters) + 1)]


def test_closed_book_rows_name_their_cluster_and_interleave_them() -> None:
    spec = FAMILIES["reversal_curse"]
    options = TaskOptions(data_config=SMALL)
    rows = task_rows("reversal_curse", "p2d_reverse", "closed_book", options).rows
    ds = get_dataset("reversal_curse", overrides=SMALL)
    by_id = {item.id: item for item in ds.test}
    assert all(isinstance(r["cluster"], str) and r["cluster"] == spec.cluster_of(by_id[r["id"]]) for r in rows)
    n_clusters = len({r["cluster"] for r in rows})
    assert n_clusters == 4  # the people of the set described person-first
    # Any prefix spans as many people as its length allows.
    assert _clusters_in_prefixes([r["cluster"] for r in rows]) == [min(k, n_clusters)
                                                                   for k in range(1, len(rows) + 1)]


def test_icl_rows_keep_shards_whole_and_interleave_clusters_within(tiny_model_path: Path,
                                                                   isolated_cache: Path) -> None:
    built = task_rows("reversal_curse", "p2d_reverse", "icl",
                      TaskOptions(pretrained=str(tiny_model_path), context_budget=600))
    rows = built.rows
    assert built.provenance["context_version"] == CONTEXT_VERSION
    shards = [r["shard"] for r in rows]
    assert shards == sorted(shards), "a shard's rows are contiguous, so --limit shares contexts"
    first = [r["cluster"] for r in rows if r["shard"] == 0]
    assert len(set(first)) > 1 and _clusters_in_prefixes(first)[: len(set(first))] == list(
        range(1, len(set(first)) + 1))
    assert all(isinstance(r["cluster"], str) and r["cluster"] for r in rows)


def test_sweep_questions_span_every_person(tiny_model_path: Path, isolated_cache: Path) -> None:
    """The first 100 of 300 questions used to be about 10 of the 30 people."""
    options = TaskOptions(pretrained=str(tiny_model_path), sweep_lengths=(256, 1024), sweep_items=100)
    rows, provenance = sweep_rows("reversal_curse", "p2d_reverse", options)
    assert provenance["sweep_lengths"] == [256, 1024] and provenance["n_items"] == provenance["sweep_items"] == 100
    for length in (256, 1024):
        asked = [r for r in rows if r["sweep_length"] == length]
        assert len(asked) == 100 and len({r["cluster"] for r in asked}) == 30
