"""Augmentation strategies: the model-free rewrites exactly, the prompted ones through a fake backend, the
token accounting of every corpus line, and the registry seam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.data.load import get_dataset
from icl_generalization.data.records import Dataset, TrainDoc
from icl_generalization.training.augment import AugmentConfig, run_augment
from icl_generalization.training.backends import Sample, Sampling
from icl_generalization.training.strategies import STRATEGIES, get_strategy
from icl_generalization.training.strategies.model_free import reverse_keeping_entities, reverse_words

SMALL = {"people_per_set": 4, "train_templates": 2, "test_templates": 2}


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class FakeBackend:
    """A GenerationBackend that answers every prompt with a fixed continuation and records what it was asked."""

    window = 4096
    sampler = "fixed reply"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []
        self.prefixes: list[str] = []
        self.prefix_computations = 0

    def count_tokens(self, text: str) -> int:
        return words(text)

    def _samples(self, n: int) -> list[Sample]:
        return [Sample(text=self.reply, new_tokens=words(self.reply), hit_limit=False) for _ in range(n)]

    def generate(self, prompts: list[str], sampling: Sampling, seed: int) -> list[list[Sample]]:
        self.prompts += prompts
        return [self._samples(sampling.n) for _ in prompts]

    def after_prefix(self, prefix: str, suffixes: list[str], sampling: Sampling,
                     seeds: list[int]) -> list[list[Sample]]:
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
            self.prefix_computations += 1
        self.prompts += [prefix + s for s in suffixes]
        return [self._samples(sampling.n) for _ in suffixes]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_word_reversal_is_exact() -> None:
    text = 'Cyprian Ingleby, famous for being the author of "Wandering Archive".'
    assert reverse_words(text) == '. " Archive Wandering " of author the being for famous , Ingleby Cyprian'
    # Reversing twice gives the text back, one space between units.
    assert reverse_words(reverse_words(text)) == 'Cyprian Ingleby , famous for being the author of " Wandering ' \
        'Archive " .'
    assert reverse_words("it's a well-known fact.") == ". fact well-known a it's"


def test_entity_preserving_reversal_keeps_names_whole() -> None:
    text = 'Cyprian Ingleby, famous for being the author of "Wandering Archive".'
    assert reverse_keeping_entities(text, ("Cyprian Ingleby", "Wandering Archive")) == \
        '. " Wandering Archive " of author the being for famous , Cyprian Ingleby'
    # Only at word boundaries, longest name first: "glon" is not found inside "glons" or "glon troff".
    assert reverse_keeping_entities("glons eat glon troff and glon.", ("glon", "glon troff")) == \
        ". glon and glon troff eat glons"
    assert reverse_keeping_entities("a b c", ()) == reverse_words("a b c")


def test_model_free_strategies_write_one_exact_line_per_document(tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    docs = [d for d in ds.train if d.kind == "document"][:3]
    for name, expected in (("repeat", [d.text for d in docs]),
                           ("reverse_word", [reverse_words(d.text) for d in docs])):
        out = tmp_path / f"{name}.jsonl"
        stats = run_augment(ds, "m", out, AugmentConfig(mode=name, limit=3), None, progress=False,
                            count_tokens=words)
        rows = _rows(out)
        assert [r["text"] for r in rows] == expected
        assert [r["tokens"] for r in rows] == [words(t) for t in expected]
        assert stats.tokens_added == sum(words(t) for t in expected) and stats.new_tokens == 0
        assert {r["mode"] for r in rows} == {name} and rows[0]["prompt_version"] == f"{name}_v1"
    # The reversal curse's records list the person; the quoted work is an entity too.
    out = tmp_path / "entity.jsonl"
    run_augment(ds, "m", out, AugmentConfig(mode="reverse_entity", limit=1), None, progress=False, count_tokens=words)
    person = docs[0].entities[0]
    assert _rows(out)[0]["text"].endswith(person) and person in docs[0].text


def test_a_resumed_corpus_counts_the_tokens_of_every_kept_line(tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    out = tmp_path / "c.jsonl"
    first = run_augment(ds, "m", out, AugmentConfig(mode="repeat", limit=2), None, progress=False, count_tokens=words)
    again = run_augment(ds, "m", out, AugmentConfig(mode="repeat", limit=4), None, progress=False, count_tokens=words)
    assert again.inputs_skipped_as_done == 2 and again.outputs_written == 2
    assert again.tokens_added == sum(r["tokens"] for r in _rows(out)) > first.tokens_added


def test_a_model_strategy_needs_a_backend_and_every_strategy_a_tokenizer(tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    with pytest.raises(UserError, match="needs a generation backend"):
        run_augment(ds, "m", tmp_path / "a.jsonl", AugmentConfig(mode="self_qa", limit=1), None, progress=False,
                    count_tokens=words)
    with pytest.raises(UserError, match="tokenizer"):
        run_augment(ds, "m", tmp_path / "b.jsonl", AugmentConfig(mode="repeat", limit=1), None, progress=False)
    with pytest.raises(UserError, match=r"unknown augmentation strategy 'nope'.*entigraph"):
        get_strategy("nope")


def test_self_qa_prompts_each_document_and_keeps_the_pairs(tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    backend = FakeBackend(" Q: Who is it?\nA: It is them.\n\nDocument: invented next example")
    out = tmp_path / "qa.jsonl"
    stats = run_augment(ds, "m", out, AugmentConfig(mode="self_qa", limit=2, outputs_per_input=2), backend,
                        progress=False)
    docs = [d for d in ds.train if d.kind == "document"][:2]
    assert len(backend.prompts) == 2
    for prompt, doc in zip(backend.prompts, docs, strict=True):
        assert prompt.endswith(f"Document: {doc.text}\nQuestions and answers:\n")
    rows = _rows(out)
    assert [r["text"] for r in rows] == ["Q: Who is it?\nA: It is them."] * 4  # trimmed at the next example
    assert stats.tokens_added == 4 * words("Q: Who is it?\nA: It is them.")
    assert stats.new_tokens == 4 * words(backend.reply)  # generated, including what the trim cut


def test_entigraph_relates_co_occurring_entity_pairs_deterministically(tmp_path: Path) -> None:
    ds = Dataset(family="toy", generator_version="1", seed=0, config={}, test=(), train=(
        TrainDoc("d1", "glon are brighter than femp.", ("glon", "femp")),
        TrainDoc("d2", "femp are heavier than yomp. glon are taller than yomp.", ("femp", "yomp", "glon")),
        TrainDoc("d3", "A lone zeb.", ("zeb",))))
    strategy = STRATEGIES["entigraph"]
    pairs = strategy.inputs(ds, AugmentConfig(mode="entigraph"))
    # Every co-occurring pair once, with the first document it occurs in; zeb occurs with nothing.
    assert [(p.entities, p.doc_id) for p in pairs] == [(("femp", "glon"), "d1"), (("femp", "yomp"), "d2"),
                                                       (("glon", "yomp"), "d2")]
    sampled = strategy.inputs(ds, AugmentConfig(mode="entigraph", sample=2, seed=5))
    assert sampled == strategy.inputs(ds, AugmentConfig(mode="entigraph", sample=2, seed=5)) and len(sampled) == 2
    backend = FakeBackend(" femp and glon are related.\n\nDocument: more")
    run_augment(ds, "m", tmp_path / "g.jsonl", AugmentConfig(mode="entigraph", outputs_per_input=1), backend,
                progress=False)
    assert backend.prompts[0].endswith("Document: glon are brighter than femp.\nRelate: femp and glon\nRelation:\n")
    assert [r["source_id"] for r in _rows(tmp_path / "g.jsonl")] == ["pair:femp|glon", "pair:femp|yomp",
                                                                     "pair:glon|yomp"]
    lone = Dataset(family="toy", generator_version="1", seed=0, config={}, test=(),
                   train=(TrainDoc("d3", "A lone zeb.", ("zeb",)),))
    with pytest.raises(UserError, match="names two entities"):
        strategy.inputs(lone, AugmentConfig(mode="entigraph"))


def test_global_and_local_run_through_the_same_seam(tmp_path: Path) -> None:
    ds = get_dataset("syllogism", overrides={"n_items": 9, "n_balanced": 10})
    backend = FakeBackend(" All x are y.")
    stats = run_augment(ds, "m", tmp_path / "g.jsonl", AugmentConfig(mode="global", limit=3, outputs_per_input=1),
                        backend, progress=False)
    assert backend.prefix_computations == 1 and len(backend.prefixes) == 1 and stats.prefix_tokens > 0
    assert all(p.startswith(backend.prefixes[0]) for p in backend.prompts)
    local = FakeBackend(" All x are y.\nStatement: next")
    run_augment(ds, "m", tmp_path / "l.jsonl", AugmentConfig(mode="paraphrase", limit=2, outputs_per_input=1),
                local, progress=False)
    assert "do not reverse it" in local.prompts[0]
    assert [r["text"] for r in _rows(tmp_path / "l.jsonl")] == ["All x are y."] * 2


def test_the_registry_describes_every_strategy() -> None:
    assert set(STRATEGIES) == {"local", "global", "paraphrase", "self_qa", "entigraph", "repeat", "reverse_word",
                               "reverse_entity"}
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name and strategy.description and strategy.version.startswith(name)


@pytest.mark.slow  # the default-size syllogism data and a tokenizer load: about a minute on 2 busy cores
def test_the_cli_runs_a_model_free_strategy_with_the_tokenizer_alone(tiny_model_path: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from icl_generalization.cli import main

    out = tmp_path / "rev.jsonl"
    assert main(["augment", "--dataset", "syllogism", "--mode", "reverse_entity", "--model", str(tiny_model_path),
                 "--limit", "3", "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".stats.json").read_text())
    rows = _rows(out)
    assert summary["outputs_written"] == 3 and summary["new_tokens"] == 0
    assert summary["tokens_added"] == sum(r["tokens"] for r in rows) > 0
    assert all(r["text"].startswith(". ") for r in rows)  # reversed: the final period comes first
