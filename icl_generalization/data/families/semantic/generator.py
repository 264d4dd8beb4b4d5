"""Semantic structure: a real taxonomy of 110 animal and object categories, every word replaced by nonsense.

The knowledge (``semantic_kb``) has four relations: is-a (``gruds are a type of abmes``), property (``gruds are
ADJ``), ability (``gruds can VERB``) and part (``gruds have NOUN``); attributes are inherited down the tree.
Training documents state only *direct* facts and only in the forward direction. Test splits (4 options each):

- ``rephrase``: a trained fact in a held-out phrasing, same direction (was the fact learned at all?);
- ``reversal``: a trained fact asked backwards (``abmes include`` -> ``gruds``);
- ``syllogism``: a fact derivable through a chain of 2 or more trained facts (inheritance, transitive is-a);
- ``category_holdout``: everything derivable about categories whose only training fact is their parent.

Distractors are *hard*: each stands in the asked relation to some other entity (derivable from training) but
not to this one (not even through untrained real-world facts). Co-occurrence cannot give the answer away: no
document names a category with what it only inherits (``docs``), and a forward item's distractors share as many
documents with its subject as its answer does. Nor can frequency: no word is the answer to more than two
items of a split, and distractors are drawn towards the words that are answers elsewhere in it.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.families.semantic import kb as semantic_kb
from icl_generalization.data.families.semantic import text
from icl_generalization.data.families.semantic.docs import Fact, Name, write_documents
from icl_generalization.data.lexicon import make_words
from icl_generalization.data.records import Dataset, TestItem

NAME = "semantic"
# 1.3: no document names a category with what it only inherits; distractors matched to the answer in
# co-occurrence with the subject; items interleaved by subject
GENERATOR_VERSION = "1.3"
SPLITS = ("rephrase", "reversal", "syllogism", "category_holdout")
N_CHOICES = 4
# A word is the answer to at most this many items of a split (see _ItemBuilder._select).
MAX_ANSWER_REPEATS = 2
Candidate = tuple[str, str, str]  # (relation, subject, object)
Chosen = tuple[Candidate, bool, list[str]]  # a candidate, whether it is asked reversed, its distractor pool


@dataclass(frozen=True)
class SemanticConfig:
    """Defaults: the study's 2,200 training documents (10% question-answer examples) of 4-20 sentences."""

    n_documents: int = 2200
    qa_fraction: float = 0.1
    holdout_categories: int = 10
    # Upper bounds: a split stops short when no candidate is left whose answer is not already the answer of
    # MAX_ANSWER_REPEATS of its items.
    rephrase_items: int = 200
    reversal_items: int = 200
    syllogism_items: int = 200

    def __post_init__(self) -> None:
        if not 250 <= self.n_documents <= 100_000:
            raise ValueError(f"n_documents must be in 250..100000 (every category needs an article), "
                             f"got {self.n_documents}")
        if not 0.0 <= self.qa_fraction <= 0.5:
            raise ValueError(f"qa_fraction must be in 0..0.5, got {self.qa_fraction}")
        if not 1 <= self.holdout_categories <= 30:
            raise ValueError(f"holdout_categories must be in 1..30, got {self.holdout_categories}")
        for name in ("rephrase_items", "reversal_items", "syllogism_items"):
            if not 1 <= getattr(self, name) <= 5000:
                raise ValueError(f"{name} must be in 1..5000, got {getattr(self, name)}")


class Graph:
    """The taxonomy with derivation (the generator's own; ``checkers.py`` re-derives everything separately)."""

    def __init__(self, rows: list[tuple[str, str | None, dict[str, tuple[str, ...]]]]) -> None:
        self.parent = {name: parent for name, parent, _ in rows}
        self.own = {name: values for name, _, values in rows}
        self.categories = [name for name, _, _ in rows]
        self.children: dict[str, list[str]] = defaultdict(list)
        for name, parent in self.parent.items():
            if parent is not None:
                self.children[parent].append(name)
        for name in self.categories:
            for rel, values in self.own[name].items():
                inherited = [v for v in values if v in self.attributes(self.parent[name], rel, set())]
                if inherited:  # a redundant fact would make a "syllogism" item answerable from one sentence
                    raise ValueError(f"semantic_kb: {name} restates inherited {rel} {inherited}")

    def ancestors(self, name: str | None) -> list[str]:
        out: list[str] = []
        parent = self.parent[name] if name is not None else None
        while parent is not None:
            out.append(parent)
            parent = self.parent[parent]
        return out

    def attributes(self, name: str | None, rel: str, untrained: set[str]) -> dict[str, str]:
        """attribute -> the nearest category (``name`` or an ancestor) that states it; skips ``untrained``."""
        found: dict[str, str] = {}
        for cat in ([name] if name else []) + self.ancestors(name):
            if cat in untrained:
                continue
            for value in self.own[cat][rel]:
                found.setdefault(value, cat)
        return found

    def holds(self, rel: str, x: str, y: str, untrained: set[str]) -> bool:
        if rel == "isa":
            return y in self.ancestors(x)
        return y in self.attributes(x, rel, untrained)

    def chain(self, rel: str, x: str, y: str, untrained: set[str]) -> list[Fact]:
        """The trained facts that derive (rel, x, y): is-a steps up to the category that states it, then that fact."""
        top = y if rel == "isa" else self.attributes(x, rel, untrained)[y]
        steps, cat = [], x
        while cat != top:
            parent = self.parent[cat]
            assert parent is not None
            steps.append(Fact("isa", cat, parent))
            cat = parent
        return steps if rel == "isa" else [*steps, Fact(rel, top, y)]

    def inferred(self, x: str, untrained: set[str]) -> list[Candidate]:
        """What holds of ``x`` only through a chain (a grandparent or higher, an ancestor's attribute)."""
        out = [("isa", x, a) for a in self.ancestors(x)[1:]]
        out += [(rel, x, v) for rel in semantic_kb.RELATIONS
                for v, cat in self.attributes(x, rel, untrained).items() if cat != x]
        return out

    def kept_apart(self) -> frozenset[frozenset[Name]]:
        """Pairs of names no document may hold together: each category and everything it only inherits."""
        return frozenset(frozenset((("isa", x), (rel, y))) for c in self.categories
                         for rel, x, y in self.inferred(c, set()))


def _choose_holdouts(graph: Graph, n: int, rng: random.Random) -> list[str]:
    # Leaves at depth >= 3 inherit enough to test; one per parent so a parent keeps trained children.
    leaves = [c for c in graph.categories if not graph.children[c] and len(graph.ancestors(c)) >= 3]
    rng.shuffle(leaves)
    chosen: list[str] = []
    for leaf in leaves:
        if len(chosen) < n and all(graph.parent[leaf] != graph.parent[c] for c in chosen):
            chosen.append(leaf)
    if len(chosen) < n:
        raise ValueError(f"holdout_categories: only {len(chosen)} leaves qualify, asked for {n}")
    return sorted(chosen, key=graph.categories.index)


def generate(config: SemanticConfig, rng: random.Random, seed: int = 0) -> Dataset:
    graph = Graph(semantic_kb.parse_kb())
    holdouts = _choose_holdouts(graph, config.holdout_categories, rng)
    untrained = set(holdouts)
    keys = [("category", c) for c in graph.categories]
    keys += sorted({(rel, v) for c in graph.categories for rel, vs in graph.own[c].items() for v in vs})
    words = make_words(len(keys), rng, pool=NAME, max_shared_head=2)
    word = {key: w for key, w in zip(keys, words, strict=True)}

    def w(rel: str, value: str) -> str:
        return word[("category" if rel == "isa" else rel, value)]

    facts = [Fact("isa", c, p) for c, p in graph.parent.items() if p is not None]
    facts += [Fact(rel, c, v) for c in graph.categories for rel, vs in graph.own[c].items() for v in vs]
    trained = [f for f in facts if f.relation == "isa" or f.subject not in untrained]
    corpus = write_documents(trained, graph.categories, w, graph.kept_apart(), config.n_documents,
                             config.qa_fraction, rng)

    trained_set = set(trained)
    builder = _ItemBuilder(graph, untrained, trained, w, corpus.docs_of, corpus.naming, rng)
    test = builder.build(config, holdouts)
    graph_json = {
        "categories": [{"name": c, "word": w("isa", c), "parent": graph.parent[c], "holdout": c in untrained}
                       for c in graph.categories],
        "lexicon": [{"kind": kind, "name": name, "word": word[(kind, name)]} for kind, name in keys],
        "facts": [{"relation": f.relation, "subject": w("isa", f.subject), "object": w(f.relation, f.obj),
                   "trained": f in trained_set} for f in facts],
        "holdouts": [w("isa", c) for c in holdouts],
        "templates": {"train": {k: list(v) for k, v in text.TRAIN.items()}, "test_forward": text.TEST_FORWARD,
                      "test_reversed": text.TEST_REVERSED, "questions": text.QUESTIONS,
                      "answer_prefix": text.ANSWER_PREFIX,
                      "framing": list(text.FRAMING_TOPIC) + list(text.FRAMING_PLAIN)},
    }
    return Dataset(family=NAME, generator_version=GENERATOR_VERSION, seed=seed, config=asdict(config),
                   train=tuple(corpus.docs), test=tuple(test), graph=graph_json)


class _ItemBuilder:
    def __init__(self, graph: Graph, untrained: set[str], trained: list[Fact], w: Callable[[str, str], str],
                 docs_of: dict[Fact, list[str]], naming: dict[Name, frozenset[str]], rng: random.Random) -> None:
        self.graph, self.untrained, self.trained, self.w, self.docs_of, self.naming, self.rng = (
            graph, untrained, trained, w, docs_of, naming, rng)
        self.objects = {rel: sorted({f.obj for f in trained if f.relation == rel}) for rel in text.TRAIN}
        # Closures, computed once: what training entails about each category, and what is true of it at all.
        self.derivable = {c: self._closure(c, untrained) for c in graph.categories}
        self.true = {c: self._closure(c, set()) for c in graph.categories}
        self.holders: dict[tuple[str, str], set[str]] = defaultdict(set)
        for c, known in self.derivable.items():
            for key in known:
                self.holders[key].add(c)

    def _closure(self, c: str, untrained: set[str]) -> set[tuple[str, str]]:
        out = {("isa", a) for a in self.graph.ancestors(c)}
        out |= {(rel, v) for rel in semantic_kb.RELATIONS for v in self.graph.attributes(c, rel, untrained)}
        return out

    def forward_distractors(self, rel: str, x: str) -> list[str]:
        pool = self.objects[rel] if rel != "isa" else self.graph.categories
        return [y for y in pool if y != x and (rel, y) not in self.true[x] and self.holders[(rel, y)] - {x}]

    def reverse_distractors(self, rel: str, y: str) -> list[str]:
        return [z for z in self.graph.categories if z != y and (rel, y) not in self.true[z]
                and any(r == rel and o != y for r, o in self.derivable[z])]

    def _pool(self, rel: str, x: str, y: str, reverse: bool) -> list[str]:
        return self.reverse_distractors(rel, y) if reverse else self.forward_distractors(rel, x)

    def _option_word(self, rel: str, value: str, reverse: bool) -> str:
        """The scored word for ``value``: a category when the fact is asked reversed, else a ``rel`` object."""
        return self.w("isa" if reverse else rel, value)

    def _select(self, candidates: list[Candidate], n: int | None, reverse: bool,
                answered: Counter[str] | None = None) -> list[Chosen]:
        """Up to ``n`` shuffled candidates that have enough distractors, each with its distractor pool.

        No word is the answer to more than MAX_ANSWER_REPEATS items of a split (``answered`` counts a split's
        answers across calls): an attribute inherited by a whole branch would otherwise be the answer to many
        items and give itself away by its frequency among the options.
        """
        answered = Counter() if answered is None else answered
        self.rng.shuffle(candidates)
        chosen: list[Chosen] = []
        for rel, x, y in candidates:
            if n is not None and len(chosen) >= n:
                break
            answer = self._option_word(rel, x if reverse else y, reverse)
            if answered[answer] >= MAX_ANSWER_REPEATS:
                continue
            pool = self._pool(rel, x, y, reverse)
            if len(pool) >= N_CHOICES - 1:
                answered[answer] += 1
                chosen.append(((rel, x, y), reverse, pool))
        return chosen

    def _together(self, a: Name, b: Name) -> int:
        """How many training documents name both ``a`` and ``b``."""
        return len(self.naming.get(a, frozenset()) & self.naming.get(b, frozenset()))

    def _split(self, split: str, chosen: list[Chosen]) -> list[TestItem]:
        """The split's items, distractors as associated with the question as the answer and no more frequent.

        Each distractor slot goes to the pool word whose number of documents shared with the question's
        subject is closest to the answer's: otherwise "pick the option seen most often with the subject" reads
        the answer off the corpus (an inferred answer is never named with its subject, see ``docs``, so its
        distractors are not either; a stated one's are attributes of its neighbours).
        Next, words that are the answer to other items of the split (their stating documents are in any
        in-context prompt of the split, as the answer's are, so "pick what the context mentions" ties).
        Then frequency: inherited attributes of high-level categories are the answer to many items;
        with distractors drawn uniformly, "pick the option seen most often in the split" would beat chance by
        far. So the next key is the pool word furthest below (choices - 1) uses as a distractor per use as the
        answer, so every word is the answer in about 1 of its N_CHOICES appearances; ties are broken at random.
        Items are interleaved by subject first, so any prefix (``--limit``) spans as many categories as it can.
        """
        chosen = interleave_by_cluster(chosen, lambda c: c[0][1])
        answered = Counter(self._option_word(rel, x if reverse else y, reverse)
                           for (rel, x, y), reverse, _ in chosen)
        used: Counter[str] = Counter()
        items = []
        for index, ((rel, x, y), reverse, pool) in enumerate(chosen):
            # Asked reversed, the answer shares its stating documents with the question: that is the fact read
            # backwards (recall, which the reversal split allows), so only forward items are matched.
            target = 0 if reverse else self._together(("isa", x), (rel, y))
            words = {o: self._option_word(rel, o, reverse) for o in pool}
            keyed = [(0 if reverse else abs(self._together(("isa", x), (rel, o)) - target), not answered[words[o]],
                      used[words[o]] - (N_CHOICES - 1) * answered[words[o]], self.rng.random(), o) for o in pool]
            distractors = [o for *_, o in sorted(keyed)[:N_CHOICES - 1]]
            used.update(words[o] for o in distractors)
            items.append(self._item(split, index, rel, x, y, reverse, distractors))
        return items

    def _item(self, split: str, index: int, rel: str, x: str, y: str, reverse: bool,
              distractors: list[str]) -> TestItem:
        answer = x if reverse else y
        options = [answer, *distractors]
        self.rng.shuffle(options)
        template = text.TEST_REVERSED[rel] if reverse else text.TEST_FORWARD[rel]
        wx, wy = self.w("isa", x), self.w(rel, y)
        prompt, _ = text.test_prompt(template, "x" if reverse else "y", x=wx, y=wy)
        choices = tuple(" " + self._option_word(rel, o, reverse) + "." for o in options)
        chain = self.graph.chain(rel, x, y, self.untrained)
        return TestItem(
            id=f"{split}-{index:04d}", split=split, prompt=prompt, choices=choices, gold=(options.index(answer),),
            needs=tuple(tuple(self.docs_of[f]) for f in chain), entities=(wx, wy),
            meta={"relation": rel, "subject": x, "object": y, "chain": len(chain), "reversed": reverse},
        )

    def build(self, config: SemanticConfig, holdouts: list[str]) -> list[TestItem]:
        direct = [(f.relation, f.subject, f.obj) for f in self.trained if f.subject not in self.untrained]
        derived: list[Candidate] = []
        holdout: list[Candidate] = []
        for x in self.graph.categories:
            (holdout if x in self.untrained else derived).extend(self.graph.inferred(x, self.untrained))
        # Syllogisms: up to half longer chains, the rest two-step, so both kinds are measured. Longer chains
        # conclude in the few attributes of high-level categories, so they take their answers first.
        short = [c for c in derived if len(self.graph.chain(*c, self.untrained)) == 2]
        long = [c for c in derived if len(self.graph.chain(*c, self.untrained)) > 2]
        answered: Counter[str] = Counter()
        syllogisms = self._select(long, config.syllogism_items // 2, False, answered)
        syllogisms += self._select(short, config.syllogism_items - len(syllogisms), False, answered)
        return (self._split("rephrase", self._select(list(direct), config.rephrase_items, reverse=False))
                + self._split("reversal", self._select(list(direct), config.reversal_items, reverse=True))
                + self._split("syllogism", syllogisms)
                + self._split("category_holdout", self._select(sorted(holdout), None, reverse=False)))
