"""Checkers that prove a dataset's gold answers right, sharing no code with the generators.

They read only what a dataset exports (the documents' text, the test items, ``graph.json``'s facts and
templates) and re-derive everything:

- **syllogisms**: premises are parsed from the training text and every option is decided by brute-force model
  checking over the 2^8 Venn diagrams of three terms (``valid_conclusions``), not by the generator's rules;
- **semantic structure**: the facts are parsed out of the training documents with the exported templates (a
  sentence that is neither a known fact nor a known framing sentence is an error), a small forward-chaining
  engine closes them under the two rules ``isa(x,y) & isa(y,z) -> isa(x,z)`` and ``isa(x,y) & R(y,a) ->
  R(x,a)``, and then every gold answer must be derivable, no distractor may be derivable (nor true in the full
  exported graph), every distractor must be *hard* (its relation holds for some other entity), the documents an
  item ``needs`` must together derive its gold, and category holdouts must have exactly their parent fact;
- **simple reversals**: the comparison stated in training must entail the gold reversal and contradict the
  distractor, and the reversed statement itself must never appear in training.

Every family also gets the **answer-frequency** check: in each split, the strategy "pick the option that
appears most often across the split's items" must not beat chance, or a model could score without knowing any
fact (a word that is the answer to many items would otherwise give itself away by its frequency).

Each checker returns a list of problems (empty when the dataset is sound).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from icl_generalization.data.records import Dataset, TestItem, chance_rate

Triple = tuple[str, str, str]  # (relation or quantifier, subject, object)
MAX_REPORTED = 50


# --- syllogisms: Venn-diagram model checking ---------------------------------------------------------------

_STATEMENT = re.compile(r"(All|No|Some) ([a-z]+) are ([a-z]+)\.")


def _holds(statement: Triple, regions: Sequence[Mapping[str, bool]]) -> bool:
    quantifier, a, b = statement
    if quantifier == "All":
        return not any(r[a] and not r[b] for r in regions)
    if quantifier == "No":
        return not any(r[a] and r[b] for r in regions)
    if quantifier == "Some":
        return any(r[a] and r[b] for r in regions)
    raise ValueError(f"unknown quantifier {quantifier!r}")


def valid_conclusions(premises: Sequence[Triple], options: Sequence[Triple],
                      existential_import: bool = False) -> list[bool]:
    """For each option: is it true in every model of the premises?

    A model says which of the 2^n regions of the Venn diagram of the n terms are inhabited. Without existential
    import (the default, modern logic) ``All X are Y`` holds when no X is outside Y, even if there are no X;
    ``existential_import=True`` keeps only the models in which every term is inhabited (Aristotelian reading).
    """
    terms = sorted({t for s in (*premises, *options) for t in s[1:]})
    regions = [dict(zip(terms, bits, strict=True)) for bits in itertools.product((False, True), repeat=len(terms))]
    valid = [True] * len(options)
    for inhabited in itertools.product((False, True), repeat=len(regions)):
        model = [r for r, on in zip(regions, inhabited, strict=True) if on]
        if existential_import and not all(any(r[t] for r in model) for t in terms):
            continue
        if all(_holds(p, model) for p in premises):
            valid = [v and _holds(o, model) for v, o in zip(valid, options, strict=True)]
    return valid


def check_syllogism(ds: Dataset, existential_import: bool = False) -> list[str]:
    problems: list[str] = []
    docs = ds.doc_index()
    for item in ds.test:
        doc_ids = {d for group in item.needs for d in group}
        premises = [tuple(m.groups()) for d in sorted(doc_ids) for m in _STATEMENT.finditer(docs[d].text)]
        options = [_STATEMENT.fullmatch(c.strip()) for c in item.choices]
        if len(premises) != 2 or any(o is None for o in options):
            problems.append(f"{item.id}: cannot read two premises and six statements")
            continue
        parsed = [tuple(o.groups()) for o in options if o is not None]
        valid = valid_conclusions(premises, parsed, existential_import)  # type: ignore[arg-type]
        expected = tuple(i for i, ok in enumerate(valid) if ok)
        if expected != tuple(sorted(item.gold)):
            problems.append(f"{item.id}: gold {sorted(item.gold)} but the valid options are {list(expected)}")
    return problems


# --- simple reversals --------------------------------------------------------------------------------------

_COMPARISON = re.compile(r"([a-z]+) are (more|less) ([a-z]+) than ([a-z]+)")


def check_simple_reversal(ds: Dataset) -> list[str]:
    problems: list[str] = []
    stated: dict[str, set[Triple]] = {}
    for doc in ds.train:
        stated[doc.id] = {(f"{d} {f}", a, b) for a, d, f, b in _COMPARISON.findall(doc.text)}
    everything = set().union(*stated.values()) if stated else set()
    for item in ds.test:
        needed = set().union(*(set.intersection(*(stated[d] for d in group)) for group in item.needs))
        for i, choice in enumerate(item.choices):
            match = _COMPARISON.fullmatch((item.prompt + choice).rstrip("."))
            if match is None:
                problems.append(f"{item.id}: cannot read choice {choice!r}")
                continue
            a, direction, feature, b = match.groups()
            flipped = ("less" if direction == "more" else "more") + " " + feature
            entailed = (flipped, b, a) in needed or (f"{direction} {feature}", a, b) in needed
            contradicted = (f"{direction} {feature}", b, a) in needed or (flipped, a, b) in needed
            if (f"{direction} {feature}", a, b) in everything:
                problems.append(f"{item.id}: the tested statement itself is in training: {a} {direction} {b}")
            if i in item.gold and not entailed:
                problems.append(f"{item.id}: gold {choice!r} does not follow from the needed documents")
            if i not in item.gold and not contradicted:
                problems.append(f"{item.id}: distractor {choice!r} is not contradicted by training")
    return problems


# --- semantic structure: a forward-chaining engine over the exported graph ---------------------------------


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

    def __init__(self, graph: Mapping[str, Any]) -> None:
        templates = graph["templates"]
        self.facts = [(rel, _pattern(t)) for rel, ts in templates["train"].items() for t in ts]
        self.forward = [(rel, _pattern(t)) for rel, t in templates["test_forward"].items()]
        self.reversed = [(rel, _pattern(t)) for rel, t in templates["test_reversed"].items()]
        self.other = [_pattern(t) for t in [*templates["framing"], *templates["questions"].values()]]
        self.answer_prefix = templates["answer_prefix"]

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
    graph, reader, problems = ds.graph, SemanticReader(ds.graph), []
    stated: dict[str, set[Triple]] = {}
    for doc in ds.train:
        stated[doc.id], unknown = reader.read_document(doc.text)
        problems += [f"{doc.id}: unrecognised sentence {s!r}" for s in unknown[:3]]
    trained = set().union(*stated.values())
    exported = {(f["relation"], f["subject"], f["object"]) for f in graph["facts"]}
    marked = {(f["relation"], f["subject"], f["object"]) for f in graph["facts"] if f["trained"]}
    problems += [f"training states {f} but graph.json does not mark it trained" for f in sorted(trained - marked)]
    problems += [f"graph.json marks {f} trained but no document states it" for f in sorted(marked - trained)]
    derivable, true = closure(trained), closure(exported)
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)  # (rel, object) -> subjects
    objects: dict[tuple[str, str], set[str]] = defaultdict(set)  # (rel, subject) -> objects
    for rel, x, y in derivable:
        holders[(rel, y)].add(x)
        objects[(rel, x)].add(y)
    parent = {c["word"]: c["parent"] for c in graph["categories"]}
    word = {c["name"]: c["word"] for c in graph["categories"]}
    for h in graph["holdouts"]:
        about = {f for f in trained if h in f[1:]}
        if about != {("isa", h, word.get(parent[h] or "", ""))}:
            problems.append(f"holdout {h}: training facts {sorted(about)}, expected only its parent")
    for item in ds.test:
        problems += _check_semantic_item(item, reader, stated, derivable, true, holders, objects, graph["holdouts"])
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


# --- dispatch ----------------------------------------------------------------------------------------------


def check_needs(ds: Dataset) -> list[str]:
    ids = {d.id for d in ds.train}
    unknown = [f"{item.id}: needs unknown document {d}" for item in ds.test for group in item.needs for d in group
               if d not in ids]
    return unknown + [f"{item.id}: an empty needs group" for item in ds.test if any(not g for g in item.needs)]


def frequency_baseline(items: Sequence[TestItem]) -> tuple[float, float]:
    """Accuracy of "pick the option seen most often in these items" (ties shared), and chance accuracy."""
    seen = Counter(choice for item in items for choice in item.choices)
    score = 0.0
    for item in items:
        top = max(seen[c] for c in item.choices)
        picked = [i for i, c in enumerate(item.choices) if seen[c] == top]
        score += sum(i in item.gold for i in picked) / len(picked)
    return score / len(items), chance_rate(items)


def check_answer_frequency(ds: Dataset, margin: float = 0.1, z: float = 3.0) -> list[str]:
    """Splits where the frequency strategy beats chance by more than ``margin`` *and* by ``z`` standard errors.

    The standard error is the binomial one of a split this size at chance: on a few dozen items the strategy's
    score wanders by several points either way without any bias in the data.
    """
    problems = []
    for split in ds.splits:
        items = ds.items(split)
        baseline, chance = frequency_baseline(items)
        if baseline > chance + max(margin, z * math.sqrt(chance * (1 - chance) / len(items))):
            problems.append(f"split {split}: picking the most frequent option scores {baseline:.3f} against chance "
                            f"{chance:.3f}; answers give themselves away by how often they occur")
    return problems


CHECKERS = {"syllogism": check_syllogism, "semantic": check_semantic, "simple_reversal": check_simple_reversal}


def check_dataset(ds: Dataset) -> list[str]:
    """Every problem found (the family's own checker runs only when every needed document exists)."""
    problems = check_needs(ds)
    checker = CHECKERS.get(ds.family)
    if checker is not None and not problems:
        problems += checker(ds)
    return problems + check_answer_frequency(ds)
