"""Strategies that prompt the model: the paper's local and global augmentation, and the rival methods.

- ``local`` (paper): one call per training sentence (one per item for the item families), a few-shot prompt
  demonstrating rephrasings and reversals; several outputs per input.
- ``global`` (paper): the training corpus (or the largest sample of it that fits the window, drawn as the
  in-context tasks draw it) in context, then one document, then an instruction to draw connections. The
  corpus is the same prefix for every document, so its key/value cache is computed once and reused.
- ``paraphrase``: the control for local augmentation: the same inputs, a few-shot prompt that only rewords
  (no reversals, no conclusions), so what local adds beyond rewording can be told apart.
- ``self_qa``: question generation: the model writes question-answer pairs about each document.
- ``entigraph``: entity-graph synthesis after Yang et al. 2024 ("Synthetic continued pretraining"): for a
  pair of entities that occur together in a training document, the model writes how they are related, with
  that document in context. Entities come from the family's records (``TrainDoc.entities``) and the names
  a document quotes (the reversal curse's works, "...": ``base.document_entities``). The pairs are every
  such co-occurring pair, in the order they first occur, or a seeded sample of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from icl_generalization.core.errors import UserError
from icl_generalization.data.records import Dataset
from icl_generalization.training.backends import GenerationBackend, Sample, Sampling
from icl_generalization.training.strategies.base import (
    PROMPT_VERSION,
    AugmentConfig,
    AugmentInput,
    Output,
    Started,
    chosen_documents,
    document_entities,
    prompt_template,
    whole_documents,
)
from icl_generalization.training.text import split_sentences

# Families whose training documents are single items rather than articles: one local call per document.
# (A syllogism's premises only make sense together; a reversal-curse document such as "Have you come across
# X? They are Y." states one fact over two sentences.)
ITEM_FAMILIES = frozenset({"syllogism", "reversal_curse"})
GLOBAL_SPLIT = "\n\n{document}"


def sentence_inputs(ds: Dataset, config: AugmentConfig) -> list[AugmentInput]:
    """One input per training sentence (per document for the item families and one-sentence documents)."""
    docs = chosen_documents(ds, config)
    if ds.family in ITEM_FAMILIES:
        return whole_documents(docs)
    inputs = []
    for doc in docs:
        sentences = split_sentences(doc.text)
        if len(sentences) == 1:
            inputs += whole_documents([doc])
        else:
            inputs += [AugmentInput(source_id=f"{doc.id}#{i}", text=s, doc_id=doc.id, entities=doc.entities)
                       for i, s in enumerate(sentences)]
    return inputs


def document_inputs(ds: Dataset, config: AugmentConfig) -> list[AugmentInput]:
    return whole_documents(chosen_documents(ds, config))


def entity_pair_inputs(ds: Dataset, config: AugmentConfig) -> list[AugmentInput]:
    """Every pair of entities that occur together in a training document, once, with the first such document."""
    pairs: dict[tuple[str, str], AugmentInput] = {}
    for doc in (d for d in ds.train if d.kind == "document"):
        for a, b in combinations(sorted(set(document_entities(doc))), 2):
            if (a, b) not in pairs:
                pairs[a, b] = AugmentInput(source_id=f"pair:{a}|{b}", text=doc.text, doc_id=doc.id, entities=(a, b))
    if not pairs:
        raise UserError(f"entigraph: no training document of {ds.family} names two entities; nothing to relate")
    chosen = list(pairs.values())
    if config.sample is not None and config.sample < len(chosen):
        keep = set(random.Random(f"{config.seed}:pairs").sample(range(len(chosen)), config.sample))
        chosen = [p for i, p in enumerate(chosen) if i in keep]
    return chosen[:config.limit]


def cut_at(*stops: str) -> Callable[[str], str]:
    """An output ends where the model starts inventing the next few-shot example."""
    def trim(text: str) -> str:
        for stop in stops:
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut]
        return text.strip()

    return trim


trim_local = cut_at("\nStatement:", "\n\n")


def global_prompt_parts(ds: Dataset, count_tokens: Callable[[str], int], window: int, config: AugmentConfig,
                        longest_document: str) -> tuple[str, str]:
    """Split the global prompt into the shared corpus prefix and the per-document suffix template."""
    template = prompt_template("global")
    head, tail = template.split("{corpus}")
    marker = tail.index(GLOBAL_SPLIT)
    fixed_prefix, suffix_template = tail[:marker], tail[marker:]
    room = config.context_budget or (window - config.max_new_tokens - 16)
    room -= count_tokens(head + fixed_prefix) + count_tokens(suffix_template.format(document=longest_document))
    if room <= 0:
        raise UserError(f"global augmentation: the model's window ({window} tokens) leaves no room for the corpus "
                        f"after the document, instruction and {config.max_new_tokens} new tokens")
    docs = [d for d in ds.train if d.kind == "document"]
    rng = random.Random(f"{config.seed}:global-corpus")
    order = list(range(len(docs)))
    rng.shuffle(order)
    chosen: list[int] = []
    used = 0
    for i in order:  # the whole corpus when it fits, else a random sample up to the room, as the ICL tasks do
        cost = count_tokens(docs[i].text + "\n")
        if used + cost <= room:
            chosen.append(i)
            used += cost
    corpus = "".join(docs[i].text + "\n" for i in sorted(chosen))
    return head + corpus + fixed_prefix, suffix_template


def _fill(template: str, item: AugmentInput) -> str:
    fields: dict[str, Any] = {"document": item.text}
    if len(item.entities) == 2:
        fields.update(first=item.entities[0], second=item.entities[1])
    return template.format(**fields)


@dataclass(frozen=True)
class Prompted:
    """A strategy that samples the model with the prompt ``augment_<template>_v1.txt`` per input."""

    name: str
    description: str
    inputs_of: Callable[[Dataset, AugmentConfig], list[AugmentInput]]
    trim: Callable[[str], str]
    # The global prompt: the corpus is a prefix shared by every input (computed once), and every input is
    # sampled with its own seed so a resumed run draws what an uninterrupted one would.
    shared_corpus: bool = False
    uses_model: bool = True

    @property
    def version(self) -> str:
        return f"{self.name}_{PROMPT_VERSION}"

    def inputs(self, ds: Dataset, config: AugmentConfig) -> list[AugmentInput]:
        return self.inputs_of(ds, config)

    def start(self, ds: Dataset, inputs: list[AugmentInput], config: AugmentConfig,
              backend: GenerationBackend | None) -> Started:
        if backend is None:
            raise UserError(f"strategy {self.name} generates text with the model; it needs a generation backend")
        model = backend
        sampling = Sampling(n=config.outputs_per_input, temperature=config.temperature, top_p=config.top_p,
                            max_new_tokens=config.max_new_tokens)

        def outputs(samples: list[list[Sample]]) -> list[list[Output]]:
            return [[Output(text=self.trim(s.text), new_tokens=s.new_tokens, hit_limit=s.hit_limit) for s in row]
                    for row in samples]

        if not self.shared_corpus:
            template = prompt_template(self.name)

            def produce(batch: list[AugmentInput], seeds: list[int]) -> list[list[Output]]:
                # Sampled as one batch, seeded with its first input's seed: after a resume the batches (and
                # so their samples) may differ, without duplicates or gaps.
                return outputs(model.generate([_fill(template, i) for i in batch], sampling, seeds[0]))

            return Started(produce=produce)
        if not inputs:
            return Started(produce=lambda batch, seeds: [])
        longest = max((i.text for i in inputs), key=model.count_tokens)
        prefix, suffix = global_prompt_parts(ds, model.count_tokens, model.window, config, longest)

        def after_corpus(batch: list[AugmentInput], seeds: list[int]) -> list[list[Output]]:
            return outputs(model.after_prefix(prefix, [suffix.format(document=i.text) for i in batch], sampling,
                                              seeds))

        return Started(produce=after_corpus, prefix_tokens=model.count_tokens(prefix))


LOCAL = Prompted("local", "the paper's local augmentation: rephrasings, reversals and conclusions per sentence",
                 sentence_inputs, trim_local)
GLOBAL = Prompted("global", "the paper's global augmentation: connections between each document and the corpus "
                  "in context", document_inputs, str.strip, shared_corpus=True)
PARAPHRASE = Prompted("paraphrase", "paraphrase only: the local inputs reworded, without reversals or conclusions",
                      sentence_inputs, trim_local)
SELF_QA = Prompted("self_qa", "question generation: question-answer pairs the model writes about each document",
                   document_inputs, cut_at("\nDocument:", "\n\n"))
ENTIGRAPH = Prompted("entigraph", "entity-graph synthesis: how two entities that occur together are related",
                     entity_pair_inputs, cut_at("\nDocument:", "\n\n"))
