"""Training documents of the semantic-structure family: varied, vaguely encyclopedic articles and QA examples.

Article styles (each 4-20 sentences):

- ``profile``: one category, all of its direct facts;
- ``encyclopedia``: one category with its direct facts, then its subtypes (``x are a type of <it>``) and a
  fact about each;
- ``field_notes``: facts of a few categories from one subtree, interleaved;
- ``glossary``: the is-a facts of several unrelated categories.

Question-answer examples (``kind="qa"``) ask ``What can gruds do?`` and answer with a training statement, so
that finetuning on the corpus keeps the model answering questions.

Every document states facts only in the forward direction (subject first) and only *direct* facts: the
inheritances and reversals the tests ask for are never written down. The first pass writes one profile per
category, so every trained fact appears in at least one document; the rest are drawn at random, so most
facts appear in several.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from icl_generalization.data.families.semantic import text
from icl_generalization.data.records import TrainDoc

MIN_SENTENCES, MAX_SENTENCES = 4, 20
STYLES = ("profile", "encyclopedia", "field_notes", "glossary")


@dataclass(frozen=True)
class Fact:
    relation: str  # "isa", "property", "ability" or "part"
    subject: str  # a category's real name
    obj: str  # a category (is-a) or an attribute value, real name


Sentence = tuple[str, Fact | None]  # the text and the fact it states (None for framing)


class _Writer:
    def __init__(self, trained: Sequence[Fact], categories: Sequence[str], w: Callable[[str, str], str],
                 rng: random.Random) -> None:
        self.rng, self.w, self.categories = rng, w, list(categories)
        self.facts_of: dict[str, list[Fact]] = defaultdict(list)
        self.subtypes: dict[str, list[Fact]] = defaultdict(list)
        for fact in trained:
            self.facts_of[fact.subject].append(fact)
            if fact.relation == "isa":
                self.subtypes[fact.obj].append(fact)
        self.trained = list(trained)

    def state(self, fact: Fact) -> Sentence:
        template = self.rng.choice(text.TRAIN[fact.relation])
        return template.format(x=self.w("isa", fact.subject), y=self.w(fact.relation, fact.obj)), fact

    def topic(self, category: str) -> Sentence:
        return self.rng.choice(text.FRAMING_TOPIC).format(x=self.w("isa", category)), None

    def plain(self, exclude: Sequence[Sentence] = ()) -> Sentence:
        used = {s for s, _ in exclude}
        return self.rng.choice([p for p in text.PADDING if p not in used]), None

    def facts(self, facts: Sequence[Fact]) -> list[Sentence]:
        shuffled = list(facts)
        self.rng.shuffle(shuffled)
        return [self.state(f) for f in shuffled]

    def profile(self, category: str) -> list[Sentence]:
        return [self.topic(category), *self.facts(self.facts_of[category])]

    def encyclopedia(self, category: str) -> list[Sentence]:
        out = [self.topic(category), *self.facts(self.facts_of[category])]
        subtypes = list(self.subtypes[category])
        self.rng.shuffle(subtypes)
        for isa in subtypes[: self.rng.randint(1, 4)]:
            out.append(self.state(isa))
            others = [f for f in self.facts_of[isa.subject] if f.relation != "isa"]
            if others:
                out.append(self.state(self.rng.choice(others)))
        return out

    def field_notes(self, root: str) -> list[Sentence]:
        subtree = [root]
        for cat in subtree:  # grows while iterating: breadth-first walk
            subtree.extend(f.subject for f in self.subtypes[cat])
        chosen = self.rng.sample(subtree, min(len(subtree), self.rng.randint(2, 4)))
        return [(text.FIELD_NOTES, None), self.plain(), *self.facts([f for c in chosen for f in self.facts_of[c]])]

    def glossary(self) -> list[Sentence]:
        chosen = self.rng.sample(self.categories, self.rng.randint(4, 12))
        isas = [f for c in chosen for f in self.facts_of[c] if f.relation == "isa"]
        return [(text.GLOSSARY, None), *self.facts(isas)]

    def qa(self) -> list[Sentence]:
        out: list[Sentence] = []
        for fact in self.rng.sample(self.trained, self.rng.randint(2, 8)):
            question = text.QUESTIONS[fact.relation].format(x=self.w("isa", fact.subject))
            answer, _ = self.state(fact)
            out += [(question, None), (text.ANSWER_PREFIX + answer, fact)]
        return out

    def fit(self, sentences: list[Sentence]) -> list[Sentence]:
        """Pad with framing sentences up to 4, cut facts beyond 20 (framing first sentence kept)."""
        sentences = sentences[:MAX_SENTENCES]
        while len(sentences) < MIN_SENTENCES:
            sentences.append(self.plain(sentences))
        return sentences


def write_documents(trained: Sequence[Fact], categories: Sequence[str], w: Callable[[str, str], str],
                    n_documents: int, qa_fraction: float, rng: random.Random
                    ) -> tuple[list[TrainDoc], dict[Fact, list[str]]]:
    """The training corpus and, for every trained fact, the ids of the documents that state it."""
    writer = _Writer(trained, categories, w, rng)
    n_qa = round(n_documents * qa_fraction)
    n_articles = n_documents - n_qa
    if n_articles < len(categories):
        raise ValueError(f"n_documents: {n_articles} articles cannot cover {len(categories)} categories")
    order = list(categories)
    rng.shuffle(order)
    plans: list[tuple[str, list[Sentence]]] = [("document", writer.profile(c)) for c in order]
    with_subtypes = [c for c in categories if writer.subtypes[c]]
    while len(plans) < n_articles:
        style = rng.choice(STYLES)
        if style == "profile":
            body = writer.profile(rng.choice(categories))
        elif style == "encyclopedia":
            body = writer.encyclopedia(rng.choice(with_subtypes))
        elif style == "field_notes":
            body = writer.field_notes(rng.choice(with_subtypes))
        else:
            body = writer.glossary()
        plans.append(("document", body))
    plans += [("qa", writer.qa()) for _ in range(n_qa)]
    rng.shuffle(plans)
    docs: list[TrainDoc] = []
    docs_of: dict[Fact, list[str]] = defaultdict(list)
    for i, (kind, body) in enumerate(plans):
        sentences = writer.fit(body) if kind == "document" else body
        doc_id = f"doc{i:04d}"
        entities: dict[str, None] = {}
        for _, fact in sentences:
            if fact is not None:
                docs_of[fact].append(doc_id)
                entities[w("isa", fact.subject)] = None
                entities[w(fact.relation, fact.obj)] = None
        docs.append(TrainDoc(id=doc_id, text=" ".join(s for s, _ in sentences), entities=tuple(entities), kind=kind))
    for fact in trained:
        docs_of[fact] = sorted(set(docs_of[fact]))
    missing = [f for f in trained if not docs_of[f]]
    if missing:  # cannot happen: the first pass profiles every category
        raise AssertionError(f"facts in no document: {missing[:3]}")
    return docs, dict(docs_of)
