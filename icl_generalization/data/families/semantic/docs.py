"""Training documents of the semantic-structure family: varied, vaguely encyclopedic articles and QA examples.

Article styles (each 4-20 sentences):

- ``profile``: one category, all of its direct facts;
- ``encyclopedia``: one category and some of its subtypes (``x are a type of <it>``), with a fact of each
  subtype's own (never the category's own attributes, which the subtypes inherit);
- ``field_notes``: facts of a few categories from one subtree, interleaved;
- ``glossary``: the is-a facts of the kinds of one category.

Question-answer examples (``kind="qa"``, facts of one category) ask ``What can gruds do?`` and
answer with a training statement, so that finetuning on the corpus keeps the model answering questions.

Every document states facts only in the forward direction (subject first) and only *direct* facts: the
inheritances and reversals the tests ask for are never written down. Nor are they implied by co-occurrence: no
document names a category together with anything it only inherits (an ancestor's attribute, a grandparent),
so "pick the option that shares the most documents with the subject" cannot answer an inference item. The
first pass writes one profile per category, so every trained fact appears in at least one document; the rest
are drawn at random, so most facts appear in several.
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


Name = tuple[str, str]  # what a word names: ("isa", category) or (relation, attribute value), as ``w`` takes it


@dataclass(frozen=True)
class Sentence:
    text: str
    fact: Fact | None = None  # the fact it states (None for framing)
    topic: str | None = None  # a category it names without stating a fact (an opening, a question)

    def names(self) -> set[Name]:
        if self.fact is not None:
            return {("isa", self.fact.subject), (self.fact.relation, self.fact.obj)}
        return {("isa", self.topic)} if self.topic is not None else set()


Group = tuple[Sentence, ...]  # sentences kept or dropped together (a question and its answer)


@dataclass(frozen=True)
class Corpus:
    docs: list[TrainDoc]
    docs_of: dict[Fact, list[str]]  # every trained fact -> the ids of the documents that state it
    naming: dict[Name, frozenset[str]]  # every name -> the ids of the documents whose text contains its word


class _Writer:
    def __init__(self, trained: Sequence[Fact], categories: Sequence[str], w: Callable[[str, str], str],
                 apart: frozenset[frozenset[Name]], rng: random.Random) -> None:
        self.rng, self.w, self.categories, self.apart = rng, w, list(categories), apart
        self.facts_of: dict[str, list[Fact]] = defaultdict(list)
        self.subtypes: dict[str, list[Fact]] = defaultdict(list)
        for fact in trained:
            self.facts_of[fact.subject].append(fact)
            if fact.relation == "isa":
                self.subtypes[fact.obj].append(fact)
        self.trained = list(trained)

    def state(self, fact: Fact) -> Sentence:
        template = self.rng.choice(text.TRAIN[fact.relation])
        return Sentence(template.format(x=self.w("isa", fact.subject), y=self.w(fact.relation, fact.obj)), fact)

    def topic(self, category: str) -> Group:
        return (Sentence(self.rng.choice(text.FRAMING_TOPIC).format(x=self.w("isa", category)), topic=category),)

    def plain(self, exclude: Sequence[Sentence] = ()) -> Sentence:
        used = {s.text for s in exclude}
        return Sentence(self.rng.choice([p for p in text.PADDING if p not in used]))

    def facts(self, facts: Sequence[Fact]) -> list[Group]:
        shuffled = list(facts)
        self.rng.shuffle(shuffled)
        return [(self.state(f),) for f in shuffled]

    def profile(self, category: str) -> list[Group]:
        return [self.topic(category), *self.facts(self.facts_of[category])]

    def encyclopedia(self, category: str) -> list[Group]:
        # The category's own attributes are left out: printed next to its subtypes' names they would state
        # the inherited facts the syllogism split asks for by co-occurrence.
        out = [self.topic(category)]
        subtypes = list(self.subtypes[category])
        self.rng.shuffle(subtypes)
        for isa in subtypes[: self.rng.randint(1, 4)]:
            out.append((self.state(isa),))
            others = [f for f in self.facts_of[isa.subject] if f.relation != "isa"]
            if others:
                out.append((self.state(self.rng.choice(others)),))
        return out

    def subtree(self, root: str) -> list[str]:
        out = [root]
        for cat in out:  # grows while iterating: breadth-first walk
            out.extend(f.subject for f in self.subtypes[cat])
        return out

    def field_notes(self, root: str) -> list[Group]:
        subtree = self.subtree(root)
        chosen = self.rng.sample(subtree, min(len(subtree), self.rng.randint(2, 4)))
        return [(Sentence(text.FIELD_NOTES),), (self.plain(),),
                *self.facts([f for c in chosen for f in self.facts_of[c]])]

    def glossary(self, category: str) -> list[Group]:
        # The kinds of one category, not of unrelated ones: a category named beside arbitrary others would
        # share documents with nearly every category, and a distractor could not match an inferred answer,
        # which shares none with its subject.
        return [(Sentence(text.GLOSSARY),), *self.facts(self.subtypes[category])]

    def qa(self, category: str) -> list[Group]:
        # Facts of one category, for the same reason as the glossary; nothing it names is related otherwise
        # than by the facts stated, so a reversal's answer meets its question only where the fact is stated.
        facts = self.facts_of[category]
        out: list[Group] = []
        for fact in self.rng.sample(facts, min(len(facts), self.rng.randint(2, 8))):
            question = text.QUESTIONS[fact.relation].format(x=self.w("isa", fact.subject))
            answer = self.state(fact)
            out.append((Sentence(question, topic=fact.subject), Sentence(text.ANSWER_PREFIX + answer.text, fact)))
        return out

    def consistent(self, groups: Sequence[Group]) -> list[Sentence]:
        """The groups in order, less each one that would put two names kept ``apart`` into the document.

        Those are a category and what it only inherits (an ancestor's attribute, a grandparent): in one
        document they would state the inferred fact by co-occurrence, and the test could be passed without
        inferring.
        """
        named: set[Name] = set()
        out: list[Sentence] = []
        for group in groups:
            new = set().union(*(s.names() for s in group))
            if any(frozenset((a, b)) in self.apart for a in new for b in named | new):
                continue
            named |= new
            out.extend(group)
        return out

    def fit(self, sentences: list[Sentence]) -> list[Sentence]:
        """Pad with framing sentences up to 4, cut facts beyond 20 (framing first sentence kept)."""
        sentences = sentences[:MAX_SENTENCES]
        while len(sentences) < MIN_SENTENCES:
            sentences.append(self.plain(sentences))
        return sentences


def write_documents(trained: Sequence[Fact], categories: Sequence[str], w: Callable[[str, str], str],
                    apart: frozenset[frozenset[Name]], n_documents: int, qa_fraction: float,
                    rng: random.Random) -> Corpus:
    """The training corpus; no document names both of a pair in ``apart`` (see ``_Writer.consistent``)."""
    writer = _Writer(trained, categories, w, apart, rng)
    n_qa = round(n_documents * qa_fraction)
    n_articles = n_documents - n_qa
    if n_articles < len(categories):
        raise ValueError(f"n_documents: {n_articles} articles cannot cover {len(categories)} categories")
    order = list(categories)
    rng.shuffle(order)
    plans: list[tuple[str, list[Group]]] = [("document", writer.profile(c)) for c in order]
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
            body = writer.glossary(rng.choice(with_subtypes))
        plans.append(("document", body))
    with_facts = [c for c in categories if len(writer.facts_of[c]) >= 2]  # a QA example asks two questions or more
    plans += [("qa", writer.qa(rng.choice(with_facts))) for _ in range(n_qa)]
    rng.shuffle(plans)
    docs: list[TrainDoc] = []
    docs_of: dict[Fact, list[str]] = defaultdict(list)
    naming: dict[Name, set[str]] = defaultdict(set)
    for i, (kind, body) in enumerate(plans):
        kept = writer.consistent(body)
        sentences = writer.fit(kept) if kind == "document" else kept
        doc_id = f"doc{i:04d}"
        entities: dict[str, None] = {}
        for sentence in sentences:
            for name in sentence.names():
                naming[name].add(doc_id)
            if sentence.fact is not None:
                docs_of[sentence.fact].append(doc_id)
                entities[w("isa", sentence.fact.subject)] = None
                entities[w(sentence.fact.relation, sentence.fact.obj)] = None
        docs.append(TrainDoc(id=doc_id, text=" ".join(s.text for s in sentences), entities=tuple(entities),
                             kind=kind))
    for fact in trained:
        docs_of[fact] = sorted(set(docs_of[fact]))
    missing = [f for f in trained if not docs_of[f]]
    if missing:  # cannot happen: the first pass profiles every category, and a profile keeps apart nothing
        raise AssertionError(f"facts in no document: {missing[:3]}")
    return Corpus(docs, dict(docs_of), {name: frozenset(ids) for name, ids in naming.items()})
