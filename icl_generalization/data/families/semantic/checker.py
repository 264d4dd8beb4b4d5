"""The semantic-structure checker, a small logic engine over the exported graph (no code from the generator).

The facts are parsed out of the training documents with the templates ``graph.json`` exports (a sentence that
is neither a known fact nor a known framing sentence is an error), a forward-chaining engine closes them under
the two rules ``isa(x,y) & isa(y,z) -> isa(x,z)`` and ``isa(x,y) & R(y,a) -> R(x,a)``, and then every gold
answer must be derivable, no distractor may be derivable (nor true in the full exported graph), every
distractor must be *hard* (its relation holds for some other entity), the documents an item ``needs`` must
together derive its gold, and category holdouts must have exactly their parent fact. No document may name a
category together with something that holds of it only by inference (the pair would state the inference by
co-occurrence).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from icl_generalization.core.errors import DataError
from icl_generalization.core.validation import describe
from icl_generalization.data.records import GRAPH_FILE, Dataset, TestItem

Triple = tuple[str, str, str]  # (relation, subject, object)

class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


class Templates(_Strict):
    train: dict[str, list[str]]
    test_forward: dict[str, str]
    test_reversed: dict[str, str]
    framing: list[str]
    questions: dict[str, str]
    answer_prefix: str


class GraphFact(_Strict):
    relation: str
    subject: str
    object: str
    trained: bool


class Category(_Strict):
    name: str
    word: str
    parent: str | None


class ExportedGraph(_Strict):
    """What the checker reads of ``graph.json`` (parsed once: a corrupted file is one DataError, not a crash)."""

    templates: Templates
    facts: list[GraphFact]
    categories: list[Category]
    holdouts: list[str]


def parse_graph(graph: Mapping[str, object]) -> ExportedGraph:
    try:
        return ExportedGraph.model_validate(graph)
    except ValidationError as exc:
        raise DataError(describe(exc, GRAPH_FILE)) from None


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[xy]\})", template)
    return re.compile("".join(f"(?P<{p[1]}>[a-z]+)" if p in ("{x}", "{y}") else re.escape(p) for p in parts))


def closure(facts: Iterable[Triple]) -> set[Triple]:
    """Close facts under transitivity of is-a and inheritance of every other relation down is-a."""
    known = set(facts)
    while True:
        parents: dict[str, set[str]] = defaultdict(set)
        by_subject: dict[str, set[Triple]] = defaultdict(set)
        for fact in known:
            by_subject[fact[1]].add(fact)
            if fact[0] == "isa":
                parents[fact[1]].add(fact[2])
        new = {(rel, x, obj) for x, ps in parents.items() for p in ps for rel, _, obj in by_subject[p]} - known
        if not new:
            return known
        known |= new


class SemanticReader:
    """Reads facts out of documents and statements out of test items, with the templates in ``graph.json``."""

    def __init__(self, templates: Templates) -> None:
        self.facts = [(rel, _pattern(t)) for rel, ts in templates.train.items() for t in ts]
        self.forward = [(rel, _pattern(t)) for rel, t in templates.test_forward.items()]
        self.reversed = [(rel, _pattern(t)) for rel, t in templates.test_reversed.items()]
        self.other = [_pattern(t) for t in [*templates.framing, *templates.questions.values()]]
        self.answer_prefix = templates.answer_prefix

    @staticmethod
    def _match(patterns: Sequence[tuple[str, re.Pattern[str]]], sentence: str) -> list[Triple]:
        return [(rel, m["x"], m["y"]) for rel, p in patterns if (m := p.fullmatch(sentence))]

    def read_document(self, text: str) -> tuple[set[Triple], list[str]]:
        """(facts stated, sentences that are neither facts nor known framing)."""
        facts: set[Triple] = set()
        unknown = []
        for sentence in re.split(r"(?<=[.?])\s+", text.strip()):
            found = set(self._match(self.facts, sentence.removeprefix(self.answer_prefix)))
            if len(found) == 1:
                facts |= found
            elif found or not any(p.fullmatch(sentence) for p in self.other):
                unknown.append(sentence)
        return facts, unknown

    def read_statement(self, text: str) -> tuple[Triple, bool] | None:
        """A test statement as (fact, reversed), or None when it matches no test template exactly once."""
        forward, backward = self._match(self.forward, text), self._match(self.reversed, text)
        if len(forward) + len(backward) != 1:
            return None
        return (forward[0], False) if forward else (backward[0], True)


def check_semantic(ds: Dataset) -> list[str]:
    if ds.graph is None:
        return ["semantic dataset without graph.json"]
    graph = parse_graph(ds.graph)
    reader, problems = SemanticReader(graph.templates), []
    stated: dict[str, set[Triple]] = {}
    for doc in ds.train:
        stated[doc.id], unknown = reader.read_document(doc.text)
        problems += [f"{doc.id}: unrecognised sentence {s!r}" for s in unknown[:3]]
    trained = set().union(*stated.values())
    exported = {(f.relation, f.subject, f.object) for f in graph.facts}
    marked = {(f.relation, f.subject, f.object) for f in graph.facts if f.trained}
    problems += [f"training states {f} but graph.json does not mark it trained" for f in sorted(trained - marked)]
    problems += [f"graph.json marks {f} trained but no document states it" for f in sorted(marked - trained)]
    derivable, true = closure(trained), closure(exported)
    problems += _co_occurring_inferences(ds, true - exported)
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)  # (rel, object) -> subjects
    objects: dict[tuple[str, str], set[str]] = defaultdict(set)  # (rel, subject) -> objects
    for rel, x, y in derivable:
        holders[(rel, y)].add(x)
        objects[(rel, x)].add(y)
    parent = {c.word: c.parent for c in graph.categories}
    word = {c.name: c.word for c in graph.categories}
    for h in graph.holdouts:
        about = {f for f in trained if h in f[1:]}
        if h not in parent:
            problems.append(f"holdout {h} is not a category word of graph.json")
        elif about != {("isa", h, word.get(parent[h] or "", ""))}:
            problems.append(f"holdout {h}: training facts {sorted(about)}, expected only its parent")
    for item in ds.test:
        problems += _check_semantic_item(item, reader, stated, derivable, true, holders, objects, graph.holdouts)
    return problems


def _co_occurring_inferences(ds: Dataset, inferred: set[Triple]) -> list[str]:
    """Documents that name a category and something it holds only by inference (first three of each)."""
    pairs = {frozenset((x, y)) for _, x, y in inferred}
    names = set().union(*pairs)
    problems = []
    for doc in ds.train:
        named = sorted(set(re.findall(r"[a-z]+", doc.text)) & names)
        together = [(a, b) for i, a in enumerate(named) for b in named[i + 1:] if frozenset((a, b)) in pairs]
        problems += [f"{doc.id}: names {a} and {b}, related only by inference" for a, b in together[:3]]
    return problems


def _check_semantic_item(item: TestItem, reader: SemanticReader, stated: Mapping[str, set[Triple]],
                         derivable: set[Triple], true: set[Triple], holders: Mapping[tuple[str, str], set[str]],
                         objects: Mapping[tuple[str, str], set[str]], holdouts: Sequence[str]) -> list[str]:
    problems = []
    read = [reader.read_statement(item.prompt + c) for c in item.choices]
    if any(r is None for r in read):
        return [f"{item.id}: a choice does not read as exactly one test statement"]
    needed = set().union(*(set.intersection(*(stated[d] for d in group)) for group in item.needs))
    for i, r in enumerate(read):
        assert r is not None
        (rel, x, y), backward = r
        if i in item.gold:
            if (rel, x, y) not in derivable:
                problems.append(f"{item.id}: gold {item.choices[i]!r} is not derivable from training")
            elif (rel, x, y) not in closure(needed):
                problems.append(f"{item.id}: gold {item.choices[i]!r} does not follow from the documents it needs")
            if item.split == "category_holdout" and x not in holdouts:
                problems.append(f"{item.id}: subject {x} is not a holdout category")
            continue
        if (rel, x, y) in derivable or (rel, x, y) in true:
            problems.append(f"{item.id}: distractor {item.choices[i]!r} is true")
        # Hard: the distractor stands in the asked relation to some *other* entity.
        hard = objects.get((rel, x), set()) - {y} if backward else holders.get((rel, y), set()) - {x}
        if not hard:
            problems.append(f"{item.id}: distractor {item.choices[i]!r} is not hard (relation holds for no other)")
    return problems
