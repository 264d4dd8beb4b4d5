import json
from pathlib import Path
from typing import Any

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.data.load import get_dataset
from icl_generalization.training.augment import AugmentConfig, run_augment
from icl_generalization.training.backends import HFBackend, Sample, Sampling
from icl_generalization.training.corpus import read_corpus
from icl_generalization.training.strategies import get_strategy

SMALL = {"people_per_set": 4, "train_templates": 3, "test_templates": 2}


class Recording:
    """Wraps a backend: records prompts and can fail after a number of calls (a simulated crash)."""

    def __init__(self, inner: HFBackend, fail_after: int | None = None) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.prompts: list[str] = []
        self.window = inner.window
        self.sampler = inner.sampler
        self.calls = 0

    @property
    def prefix_computations(self) -> int:
        return self.inner.prefix_computations

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def _tick(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated stop")

    def generate(self, prompts: list[str], sampling: Sampling, seed: int) -> list[list[Sample]]:
        self._tick()
        self.prompts += prompts
        return self.inner.generate(prompts, sampling, seed)

    def after_prefix(self, prefix: str, suffixes: list[str], sampling: Sampling, seeds: list[int]) -> Any:
        self._tick()
        self.prompts += [prefix + s for s in suffixes]
        return self.inner.after_prefix(prefix, suffixes, sampling, seeds)


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_path: Path) -> HFBackend:
    return HFBackend(str(tiny_model_path), device="cpu")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_after_a_stop_has_no_duplicate_and_no_gap(tiny_backend: HFBackend, tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    out = tmp_path / "corpus.jsonl"
    config = AugmentConfig(mode="local", limit=6, outputs_per_input=2, max_new_tokens=8, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_augment(ds, "tiny", out, config, Recording(tiny_backend, fail_after=1), progress=False)
    assert len(_rows(out)) == 4  # one batch of two inputs, two outputs each, then the stop
    with out.open("a") as fh:
        fh.write('{"source_id": "torn')  # a write cut in the middle of a line
    stats = run_augment(ds, "tiny", out, config, Recording(tiny_backend), progress=False)
    assert stats.inputs_skipped_as_done == 2
    keys = [(r["source_id"], r["sample"]) for r in _rows(out)]
    expected = {(i.source_id, k) for i in get_strategy("local").inputs(ds, config) for k in range(2)}
    assert len(keys) == len(set(keys)) and set(keys) == expected


def test_resume_refuses_a_corpus_of_other_settings(tiny_backend: HFBackend, tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    out = tmp_path / "corpus.jsonl"
    run_augment(ds, "tiny", out, AugmentConfig(limit=1, outputs_per_input=1, max_new_tokens=4), tiny_backend,
                progress=False)
    with pytest.raises(UserError, match=r"written by a different run.*temperature"):
        run_augment(ds, "tiny", out, AugmentConfig(limit=1, outputs_per_input=1, max_new_tokens=4, temperature=0.5),
                    tiny_backend, progress=False)


def test_local_prompts_render_each_document(tiny_backend: HFBackend, tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    recorder = Recording(tiny_backend)
    run_augment(ds, "tiny", tmp_path / "c.jsonl", AugmentConfig(limit=3, outputs_per_input=1, max_new_tokens=4),
                recorder, progress=False)
    assert len(recorder.prompts) == 3
    for prompt, doc in zip(recorder.prompts, ds.train[:3], strict=True):
        assert prompt.rstrip().endswith(f"Statement: {doc.text}\nRewrites:")


def test_global_mode_computes_the_corpus_prefix_once(tiny_model_path: Path, tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    recorder = Recording(HFBackend(str(tiny_model_path), device="cpu"))
    stats = run_augment(ds, "tiny", tmp_path / "g.jsonl",
                        AugmentConfig(mode="global", limit=5, outputs_per_input=1, max_new_tokens=6, batch_size=2),
                        recorder, progress=False)
    assert recorder.calls == 3 and stats.prefix_computations == 1
    corpus = ds.train[0].text
    # every prompt shares the corpus (the whole small training set fits) and ends with its own document
    assert all(corpus in p for p in recorder.prompts)
    for prompt, doc in zip(recorder.prompts, ds.train[:5], strict=True):
        assert f"\n\n{doc.text}\n\nThink about" in prompt
    assert stats.outputs_written == 5 and len(read_corpus(tmp_path / "g.jsonl")) <= 5


class Scripted:
    """A backend that returns fixed texts, to check cleaning exactly."""

    window = 2048
    prefix_computations = 0
    sampler = "scripted"

    def __init__(self) -> None:
        self.texts = ["kiplets are lighter than zorbs.", "  ", "kiplets are lighter than zorbs.",
                      "a.\na.\na.\na.", "zorbs weigh more.", "zorbs weigh more than kiplets"]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: list[str], sampling: Sampling, seed: int) -> list[list[Sample]]:
        return [[Sample(text=self.texts.pop(0), new_tokens=3, hit_limit=False) for _ in range(sampling.n)]
                for _ in prompts]


def test_clean_counts_what_it_drops(tmp_path: Path) -> None:
    ds = get_dataset("reversal_curse", overrides=SMALL)
    out = tmp_path / "c.jsonl"
    stats = run_augment(ds, "scripted", out, AugmentConfig(limit=3, outputs_per_input=2, clean=True), Scripted(),
                        progress=False)
    assert stats.dropped == {"empty": 1, "duplicate": 1, "runaway": 1}
    rows = _rows(out)
    assert [r["dropped"] for r in rows] == [None, "empty", "duplicate", "runaway", None, None]
    assert [r["text"] for r in read_corpus(out)] == ["kiplets are lighter than zorbs.", "zorbs weigh more.",
                                                     "zorbs weigh more than kiplets"]


def test_resume_refuses_a_corpus_of_another_sampler(tmp_path: Path) -> None:
    """Two samplers draw differently from the same seed: a corpus is resumed by the sampler that began it."""
    ds = get_dataset("reversal_curse", overrides=SMALL)
    out = tmp_path / "c.jsonl"
    run_augment(ds, "scripted", out, AugmentConfig(limit=1, outputs_per_input=1), Scripted(), progress=False)
    assert _rows(out)[0]["sampler"] == "scripted"
    other = Scripted()
    other.sampler = "another"
    with pytest.raises(UserError, match=r"written by a different run \(sampler: file has 'scripted', this run "
                                        r"'another'\)"):
        run_augment(ds, "scripted", out, AugmentConfig(limit=2, outputs_per_input=1), other, progress=False)


def test_bad_settings_are_user_errors(tmp_path: Path) -> None:
    from icl_generalization.cli import main

    assert main(["augment", "--dataset", "reversal_curse", "--out", str(tmp_path / "x.jsonl"),
                 "--temperature", "-1"]) == 2
    assert main(["augment", "--dataset", "reversal_curse", "--out", str(tmp_path / "x.jsonl"),
                 "--backend", "vllm"]) == 2
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["local", "global"])
def test_default_model_writes_about_the_documents(mode: str, default_model_path: Path, tmp_path: Path) -> None:
    import re

    ds = get_dataset("reversal_curse")
    backend = HFBackend(str(default_model_path), device="cpu")
    out = tmp_path / f"{mode}.jsonl"
    # Greedy decoding keeps the check deterministic.
    config = AugmentConfig(mode=mode, limit=3, outputs_per_input=1, max_new_tokens=48, temperature=0.0,
                           context_budget=1500 if mode == "global" else None)
    stats = run_augment(ds, "smollm2-135m", out, config, backend, progress=False)
    rows = _rows(out)
    assert stats.outputs_written == len(rows) == 3 and all(r["text"].strip() for r in rows)
    docs = ds.doc_index()

    def names(doc_id: str) -> list[str]:
        """What a document is about: its person (first or last name) and the quoted title of their work."""
        doc = docs[doc_id]
        return [*doc.entities[0].split(), *re.findall(r'"([^"]+)"', doc.text)]

    # A 135M model sometimes drifts to a neighbouring document (global mode); most outputs stay on theirs.
    on_topic = [any(n in r["text"] for n in names(r["doc_id"])) for r in rows]
    assert sum(on_topic) >= 2, rows


def test_a_corpus_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    from icl_generalization.core.errors import DataError

    ds = get_dataset("reversal_curse", overrides=SMALL)
    out = tmp_path / "c.jsonl"
    out.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r"c\.jsonl:1: expected a JSON object, got list"):
        run_augment(ds, "scripted", out, AugmentConfig(limit=1, outputs_per_input=1), Scripted(), progress=False)
