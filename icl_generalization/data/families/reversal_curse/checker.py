"""The reversal-curse checker: who is what, read from the training documents alone (nothing from the generator).

It must also work on Berglund et al.'s imported files, whose test prompts paraphrase a description in words no
training document uses ("directing the virtual reality masterpiece" for "the director of ..."), so it does not
rely on any template:

- the **people** are the options written as capitalized words only (the name options of the name-answer
  splits); a training document that names exactly one of them is evidence about that person;
- a **text names a person** when it contains exactly one known name; otherwise it **describes** the person
  whose training documents share the most of its words, each word weighted by 1 / (number of people whose
  documents use it), so that template words shared by everyone count for little and the words of one
  person's description for a lot; a tie or no shared word identifies nobody;
- then for every item: the prompt must identify a person, the gold option must identify the same person,
  every distractor must identify someone else who appears in training; the first group of documents the item
  needs must all name the person, and each further group (the generator's: evidence about a distractor, so an
  in-context prompt mentions every option) must all name the person of one distractor.

A dataset whose gold answers were moved to a distractor therefore fails: the gold would name someone else.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from icl_generalization.data.records import Dataset, TestItem

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def _is_name(option: str) -> bool:
    words = option.split()
    return bool(words) and all(w[0].isupper() for w in words)


class People:
    """Who is who, learnt from the training documents: the names, and the words each person's documents use."""

    def __init__(self, names: Iterable[str], documents: Iterable[str]) -> None:
        self.names = sorted(set(names))
        self.words_of: dict[str, set[str]] = defaultdict(set)
        for text in documents:
            named = self.named_in(text)
            if len(named) == 1:
                self.words_of[named[0]] |= _words(text) - _words(named[0])
        users = Counter(w for words in self.words_of.values() for w in words)
        self.weight = {w: 1 / n for w, n in users.items()}
        self._cache: dict[str, str | None] = {}

    def named_in(self, text: str) -> list[str]:
        return [n for n in self.names if n in text]

    def who(self, text: str) -> str | None:
        """The one person ``text`` names or describes, or None when the training documents cannot tell."""
        if text not in self._cache:
            self._cache[text] = self._who(text)
        return self._cache[text]

    def _who(self, text: str) -> str | None:
        named = self.named_in(text)
        if named:
            return named[0] if len(named) == 1 else None
        words = _words(text)
        scores = sorted(((sum(self.weight[w] for w in words & used), person)
                         for person, used in self.words_of.items()), reverse=True)
        if not scores or scores[0][0] == 0 or (len(scores) > 1 and scores[0][0] == scores[1][0]):
            return None
        return scores[0][1]


def check_reversal_curse(ds: Dataset) -> list[str]:
    people = People((c.strip() for item in ds.test for c in item.choices if _is_name(c.strip())),
                    (doc.text for doc in ds.train))
    if not people.names:
        return ["no test item has names as options, so nobody can be identified in training"]
    texts = {doc.id: doc.text for doc in ds.train}
    problems: list[str] = []
    for item in ds.test:
        problems += _check_item(item, people, texts)
    return problems


def _check_item(item: TestItem, people: People, texts: dict[str, str]) -> list[str]:
    subject = people.who(item.prompt)
    if subject is None:
        return [f"{item.id}: the training documents do not tell whom the prompt is about: {item.prompt[:80]!r}"]
    problems = []
    distractors: set[str] = set()
    for i, choice in enumerate(item.choices):
        person = people.who(choice)
        if i not in item.gold and person not in (None, subject):
            distractors.add(person)
        if i in item.gold and person != subject:
            problems.append(f"{item.id}: gold {choice.strip()!r} is about {person or 'nobody known'}, "
                            f"but the prompt is about {subject}")
        elif i not in item.gold and person == subject:
            problems.append(f"{item.id}: distractor {choice.strip()!r} is also true of {subject}")
        elif i not in item.gold and person not in people.words_of:
            problems.append(f"{item.id}: distractor {choice.strip()!r} is about nobody in training")
    for k, group in enumerate(item.needs):
        named = {tuple(people.named_in(texts[d])) for d in group if d in texts}
        allowed = {(subject,)} if k == 0 else {(p,) for p in distractors}
        if len(named) > 1 or not named <= allowed:
            whom = subject if k == 0 else "one distractor"
            problems.append(f"{item.id}: needed document group {k + 1} ({group[0]}, ...) does not all name {whom}")
    return problems
