"""Model-free baselines: cheap cues that pick an option without knowing (or inferring) the tested fact.

Each baseline is a small pure function ``(item, evidence) -> one score per option``; the audit counts the
options of the highest score as the baseline's choice and shares the credit among them when several tie, so a
baseline that cannot tell the options apart scores exactly chance (a single index would win or lose by tie luck).
A baseline sees only what a model sees: the prompt, the options, the training documents (what finetuning
trains on), the in-context text before the prompt, and the other questions of the split. Never the gold, the
item's entities or its metadata (those name the answer).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from icl_generalization.data.records import TestItem

_WORD = re.compile(r"[a-z]+")
# A word in more than this share of the documents is framing ("the", "are", "field notes"), not a subject.
FRAMING_SHARE = 0.1
QUANTIFIERS = ("no", "some", "all")  # the atmosphere heuristic's order of dominance


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def phrase(option: str) -> str:
    """An option as it would appear inside a document: no leading space, no final full stop, lower case."""
    return option.strip().rstrip(".").strip().lower()


class Corpus:
    """An inverted index over documents (training documents, or the lines of an in-context prompt)."""

    def __init__(self, texts: Sequence[str], ids: Sequence[str] = ()) -> None:
        self.texts = [t.lower() for t in texts]
        self.position = {doc_id: i for i, doc_id in enumerate(ids)}
        self.index: dict[str, set[int]] = {}
        for i, text in enumerate(self.texts):
            for word in set(words(text)):
                self.index.setdefault(word, set()).add(i)
        self._found: dict[str, frozenset[int]] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def docs_with(self, text: str) -> frozenset[int]:
        """Documents containing ``text`` verbatim (case-insensitive): its words looked up, then the phrase checked."""
        key = phrase(text)
        if key not in self._found:
            parts = words(key)
            candidates = set.intersection(*(self.index.get(w, set()) for w in parts)) if parts else set()
            self._found[key] = frozenset(i for i in candidates if len(parts) == 1 or key in self.texts[i])
        return self._found[key]

    def df(self, word: str) -> int:
        return len(self.index.get(word, ()))


@dataclass(frozen=True)
class Evidence:
    """Everything a baseline may look at besides the item itself."""

    training: Corpus
    # The in-context prompt split into lines (one document each): empty in the closed-book condition.
    context: Corpus
    # How often each option string occurs among the options of the split's items.
    split_counts: Mapping[str, int] = field(default_factory=dict)

    @cached_property
    def _framing(self) -> int:
        return max(2, int(FRAMING_SHARE * len(self.training)))

    def keywords(self, item: TestItem) -> list[str]:
        """The prompt's content words (present in training, not framing), rarest first: the first is the subject."""
        found = {w for w in words(item.prompt) if 0 < self.training.df(w) <= self._framing}
        return sorted(found, key=lambda w: (self.training.df(w), w))


Baseline = Callable[[TestItem, Evidence], list[float]]


def first_position(item: TestItem, ev: Evidence) -> list[float]:
    return [-float(i) for i in range(len(item.choices))]


def last_position(item: TestItem, ev: Evidence) -> list[float]:
    return [float(i) for i in range(len(item.choices))]


def longest(item: TestItem, ev: Evidence) -> list[float]:
    return [float(len(c.strip())) for c in item.choices]


def shortest(item: TestItem, ev: Evidence) -> list[float]:
    return [-float(len(c.strip())) for c in item.choices]


def training_frequency(item: TestItem, ev: Evidence) -> list[float]:
    return [float(len(ev.training.docs_with(c))) for c in item.choices]


def training_rarity(item: TestItem, ev: Evidence) -> list[float]:
    return [-float(len(ev.training.docs_with(c))) for c in item.choices]


def split_frequency(item: TestItem, ev: Evidence) -> list[float]:
    return [float(ev.split_counts.get(c, 0)) for c in item.choices]


def split_rarity(item: TestItem, ev: Evidence) -> list[float]:
    return [-float(ev.split_counts.get(c, 0)) for c in item.choices]


def prompt_overlap(item: TestItem, ev: Evidence) -> list[float]:
    """Words an option shares with the question (a distractor built from the question's own words)."""
    asked = set(words(item.prompt))
    return [float(len(set(words(c)) & asked)) for c in item.choices]


def shared_with_options(item: TestItem, ev: Evidence) -> list[float]:
    """Words an option shares with the other options: distractors built around the gold share its name parts."""
    bags = [set(words(c)) for c in item.choices]
    return [float(sum(len(b & other) for j, other in enumerate(bags) if j != i)) for i, b in enumerate(bags)]


def distinct_from_options(item: TestItem, ev: Evidence) -> list[float]:
    return [-s for s in shared_with_options(item, ev)]


def in_context_presence(item: TestItem, ev: Evidence) -> list[float]:
    return [float(bool(ev.context.docs_with(c))) for c in item.choices]


def in_context_count(item: TestItem, ev: Evidence) -> list[float]:
    return [float(len(ev.context.docs_with(c))) for c in item.choices]


def _cooccurrence(corpus: Corpus, item: TestItem, keywords: Sequence[str]) -> list[float]:
    """Per option: the share of each keyword's documents that also mention the option, summed over keywords."""
    scores = []
    for choice in item.choices:
        docs = corpus.docs_with(choice)
        scores.append(sum(len(docs & corpus.index.get(w, set())) / max(1, corpus.df(w)) for w in keywords))
    return scores


def subject_cooccurrence(item: TestItem, ev: Evidence) -> list[float]:
    """Training documents an option shares with the question's subject (its rarest content word)."""
    return _cooccurrence(ev.training, item, ev.keywords(item)[:1])


def keyword_cooccurrence(item: TestItem, ev: Evidence) -> list[float]:
    return _cooccurrence(ev.training, item, ev.keywords(item))


def unstated_cooccurrence(item: TestItem, ev: Evidence) -> list[float]:
    """Co-occurrence in training documents other than those stating the facts the item needs.

    On a reversal split the stating document holds both the asked entity and the gold (that is the fact, read
    in either order); what may not happen is that *other* documents tie the answer to the question.
    """
    needed = {ev.training.position[d] for group in item.needs for d in group if d in ev.training.position}
    keywords = ev.keywords(item)
    scores = []
    for choice in item.choices:
        docs = ev.training.docs_with(choice) - needed
        scores.append(sum(len(docs & ev.training.index.get(w, set())) for w in keywords))
    return [float(s) for s in scores]


def context_cooccurrence(item: TestItem, ev: Evidence) -> list[float]:
    """In-context lines an option shares with the question's content words."""
    return _cooccurrence(ev.context, item, ev.keywords(item))


def _dominant_quantifier(corpus: Corpus, item: TestItem, keywords: Sequence[str]) -> str | None:
    # The premises are the documents that mention every term the question names.
    docs = set.intersection(*(corpus.index.get(w, set()) for w in keywords)) if keywords else set()
    used = {w for i in docs for w in words(corpus.texts[i]) if w in QUANTIFIERS}
    return next((q for q in QUANTIFIERS if q in used), None)


def _atmosphere(corpus: Corpus, item: TestItem, ev: Evidence) -> list[float]:
    """Syllogistic atmosphere: a conclusion with the premises' dominant quantifier (No > Some > All)."""
    quantifier = _dominant_quantifier(corpus, item, ev.keywords(item))
    return [float(quantifier is not None and words(c)[:1] == [quantifier]) for c in item.choices]


def atmosphere(item: TestItem, ev: Evidence) -> list[float]:
    return _atmosphere(ev.training, item, ev)


def context_atmosphere(item: TestItem, ev: Evidence) -> list[float]:
    return _atmosphere(ev.context, item, ev)


BASELINES: dict[str, Baseline] = {
    "first position": first_position, "last position": last_position,
    "longest option": longest, "shortest option": shortest,
    "most frequent in training": training_frequency, "least frequent in training": training_rarity,
    "most frequent in split": split_frequency, "least frequent in split": split_rarity,
    "overlap with question": prompt_overlap,
    "shares most with other options": shared_with_options, "shares least with other options": distinct_from_options,
    "present in context": in_context_presence, "count in context": in_context_count,
    "co-occurs with subject (training)": subject_cooccurrence,
    "co-occurs with question words (training)": keyword_cooccurrence,
    "co-occurs with question words outside the stating documents (training)": unstated_cooccurrence,
    "co-occurs with question words (context)": context_cooccurrence,
    "atmosphere (training premises)": atmosphere, "atmosphere (context premises)": context_atmosphere,
}


# Order-free recall of a stated fact: on a split whose only inference is reading a stated fact backwards, the
# document stating it holds both the asked entity and the gold, so these win by construction and are reported.
RECALL = frozenset({"co-occurs with subject (training)", "co-occurs with question words (training)",
                    "co-occurs with question words (context)"})


def first_word_baselines(items: Sequence[TestItem], share: float = 0.5) -> dict[str, Baseline]:
    """"Always the option starting with W" for each W that starts some, not all, options of most items.

    On syllogisms these are always-All / always-No / always-Some; a W starting every option tells nothing.
    """
    starts: Counter[str] = Counter()
    for item in items:
        firsts = [words(c)[:1] for c in item.choices]
        starts.update({f[0] for f in firsts if f and firsts.count(f) < len(firsts)})

    def prefer(word: str) -> Baseline:
        return lambda item, ev: [float(words(c)[:1] == [word]) for c in item.choices]

    return {f"starts with {w!r}": prefer(w) for w, n in sorted(starts.items()) if n >= share * len(items)}


def choose(scores: Sequence[float]) -> list[int]:
    """Every option of the highest score (the baseline's choice, ties kept)."""
    top = max(scores)
    return [i for i, s in enumerate(scores) if s == top]


def credit(item: TestItem, chosen: Sequence[int]) -> float:
    """Expected accuracy of a uniform pick among ``chosen`` (several golds all count)."""
    return sum(i in item.gold for i in chosen) / len(chosen)
