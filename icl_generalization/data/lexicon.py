"""Nonsense words: short, pronounceable, never real English, and far enough apart not to be confused.

Words are built from English-like syllables (an onset cluster, a vowel nucleus, a coda cluster), so a model
reads them as plausible new words (``glon``, ``femp``, ``trusk``, ``bemo``) rather than as noise. Every word is

- 4 or 5 letters long, one or two syllables;
- not a real English word: ``wordfreq`` gives it a Zipf frequency of 0 (it has never been seen in its
  corpora), checked for the bare form and the form with a final ``s`` (plural-like uses in the datasets);
- at edit distance >= 2 from every other word of the same lexicon (one typo must not turn one entity into
  another);
- optionally alone with its *first syllable head* (onset + vowel): words that share one, such as ``glon`` and
  ``gloft``, often share their first token, so when they are the subject and an option of one question the
  likelihood of the shared prefix leaks. ``max_shared_head`` bounds how many words may share a head.

:func:`audit` reports how a model's tokenizer splits each word, and flags words whose token ids collide.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from icl_generalization.core.digest import sha256_of
from icl_generalization.core.errors import UserError

# Onsets and codas that English words really start and end with; "c", "q" and "x" onsets are left out
# because their spelling is ambiguous, and "h" codas because they are silent.
ONSETS = ("b", "bl", "br", "d", "dr", "f", "fl", "fr", "g", "gl", "gr", "j", "k", "kl", "kr", "l", "m", "n", "p",
          "pl", "pr", "r", "s", "sk", "sl", "sm", "sn", "sp", "st", "t", "tr", "v", "w", "y", "z", "")
NUCLEI = ("a", "e", "i", "o", "u", "ai", "ee", "oo", "ou")
CODAS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "s", "t", "x", "ck", "ff", "ft", "lk", "lp", "mp", "nd",
         "nk", "nt", "rb", "rd", "rk", "rm", "rn", "sk", "sp", "st", "")
# Second syllables of two-syllable words: a single consonant onset and a short vowel, optionally closed.
SECOND_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
SECOND_NUCLEI = ("a", "e", "i", "o", "y")
SECOND_CODAS = ("", "", "", "n", "s", "t", "m", "x")
MIN_LEN, MAX_LEN = 4, 5


@dataclass(frozen=True)
class Word:
    text: str
    head: str  # first syllable's onset + vowel, the part that tends to become the first token


def _candidate(rng: random.Random) -> Word:
    onset, nucleus = rng.choice(ONSETS), rng.choice(NUCLEI)
    if rng.random() < 0.6:
        text = onset + nucleus + rng.choice(CODAS)
    else:
        # First syllable open or closed by one consonant, so the middle never stacks three consonants.
        coda = rng.choice(("", "", "m", "n", "l", "r", "s"))
        text = onset + nucleus + coda + rng.choice(SECOND_ONSETS) + rng.choice(SECOND_NUCLEI) + rng.choice(SECOND_CODAS)
    return Word(text=text, head=onset + nucleus)


@lru_cache(maxsize=65536)
def is_english(word: str) -> bool:
    """True if ``wordfreq`` has seen ``word`` (or its ``-s`` form) in English text at all."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") > 0 or zipf_frequency(word + "s", "en") > 0


def within_one_edit(a: str, b: str) -> bool:
    """Levenshtein distance <= 1, in linear time (one substitution, insertion or deletion)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] if len(a) == len(b) else a[i:] == b[i + 1:]


def _pronounceable(text: str) -> bool:
    # Three identical letters in a row, or a doubled consonant after a long vowel, read as typos.
    if any(text[i] == text[i + 1] == text[i + 2] for i in range(len(text) - 2)):
        return False
    return not any(text.endswith(v + c) for v in ("ai", "ee", "oo", "ou") for c in ("ck", "ff"))


# Each family that names things with nonsense words draws them from its own pool, so that one checkpoint can be
# trained on several families without meeting one word in two contradictory roles (a syllogism term that is
# also a simple-reversal entity). A word's pool is fixed by its spelling, so pools never overlap.
WORD_POOLS = ("simple_reversal", "syllogism", "semantic", "process")


def word_pool(word: str) -> str:
    """The pool a word belongs to (a stable hash of its spelling, the same on every machine)."""
    return WORD_POOLS[int(sha256_of(word)[:8], 16) % len(WORD_POOLS)]


def make_words(n: int, rng: random.Random, *, pool: str, max_shared_head: int = 1, exclude: Iterable[str] = (),
               max_tries: int = 400_000) -> list[str]:
    """``n`` distinct nonsense words of ``pool``, drawn with ``rng`` (same seed, same words)."""
    if pool not in WORD_POOLS:
        raise ValueError(f"pool must be one of {WORD_POOLS}, got {pool!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if max_shared_head < 1:
        raise ValueError(f"max_shared_head must be >= 1, got {max_shared_head}")
    taken = [w.lower() for w in exclude]
    words: list[str] = []
    heads: Counter[str] = Counter()
    for _ in range(max_tries):
        if len(words) == n:
            return words
        cand = _candidate(rng)
        text = cand.text
        if not MIN_LEN <= len(text) <= MAX_LEN or not _pronounceable(text):
            continue
        if heads[cand.head] >= max_shared_head or word_pool(text) != pool:
            continue
        if any(within_one_edit(text, other) for other in words) or any(within_one_edit(text, o) for o in taken):
            continue
        if is_english(text):
            continue
        words.append(text)
        heads[cand.head] += 1
    raise UserError(f"could draw only {len(words)} of {n} nonsense words (max_shared_head={max_shared_head}); "
                    "ask for fewer words or allow more words per first syllable")


def first_syllable_head(word: str) -> str:
    """Onset + vowel of the first syllable, recomputed from the spelling (for checks on finished datasets)."""
    i = 0  # "y" is a consonant here: it only ever opens a first syllable ("yomp")
    while i < len(word) and word[i] not in "aeiou":
        i += 1
    j = i
    while j < len(word) and word[j] in "aeiou" and j - i < 2:
        j += 1
    return word[:max(j, 1)]


# --- tokenizer audit ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordTokens:
    word: str
    ids: tuple[int, ...]
    pieces: tuple[str, ...]


@dataclass(frozen=True)
class AuditReport:
    words: tuple[WordTokens, ...]
    # Groups of different words whose mid-sentence token ids are identical: the model cannot tell them apart.
    collisions: tuple[tuple[str, ...], ...]
    # Groups of words sharing their first token: harmless for the scorer, but worth knowing.
    shared_first_token: tuple[tuple[str, ...], ...]

    def summary(self) -> str:
        counts = Counter(len(w.ids) for w in self.words)
        dist = ", ".join(f"{k} token{'s' * (k != 1)}: {v}" for k, v in sorted(counts.items()))
        mean = sum(len(w.ids) for w in self.words) / max(len(self.words), 1)
        return (f"{len(self.words)} words; mean {mean:.2f} tokens ({dist}); {len(self.collisions)} collisions; "
                f"{len(self.shared_first_token)} groups sharing a first token")


def audit(words: Sequence[str], tokenizer: Any) -> AuditReport:
    """Tokenize every word as it appears mid-sentence (with its leading space) and look for collisions."""
    rows = []
    for word in dict.fromkeys(words):
        ids = tuple(tokenizer(" " + word, add_special_tokens=False)["input_ids"])
        rows.append(WordTokens(word=word, ids=ids, pieces=tuple(tokenizer.convert_ids_to_tokens(list(ids)))))
    by_ids: dict[tuple[int, ...], list[str]] = {}
    by_first: dict[int, list[str]] = {}
    for row in rows:
        by_ids.setdefault(row.ids, []).append(row.word)
        if row.ids:
            by_first.setdefault(row.ids[0], []).append(row.word)
    collisions = tuple(tuple(g) for g in by_ids.values() if len(g) > 1)
    shared = tuple(tuple(g) for g in by_first.values() if len(g) > 1)
    return AuditReport(words=tuple(rows), collisions=collisions, shared_first_token=shared)


def dataset_words(ds: Any) -> list[str]:
    """The nonsense words of a dataset: its exported lexicon if it has one, else every entity it names."""
    graph = ds.graph or {}
    if "lexicon" in graph:
        return [row["word"] for row in graph["lexicon"]]
    names = [e for doc in ds.train for e in doc.entities] + [e for item in ds.test for e in item.entities]
    return list(dict.fromkeys(names))


def format_audit(report: AuditReport, verbose: bool = False) -> str:
    lines = [report.summary()]
    if verbose:
        lines += [f"  {w.word:<6} {len(w.ids)}  {' '.join(w.pieces)}" for w in report.words]
    lines += [f"  COLLISION: {', '.join(group)}" for group in report.collisions]
    return "\n".join(lines)
