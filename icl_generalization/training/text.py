"""Sentence splitting shared by augmentation and finetuning.

The study splits multi-sentence documents into one training example per sentence (independently or
cumulatively). The datasets' sentences often start with a lowercase nonsense word (``kound are laind.``), so
a boundary cannot wait for a capital letter: it is ., ! or ? (optionally followed by a closing quote or
bracket) and then white space. Model-written text (augmentation) may hold abbreviations, so a period that
ends a known abbreviation ("Dr. Smith") is not a boundary.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[.!?])([\"'\u201d\u2019)\]]?)\s+")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "no"})


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (whitespace-trimmed, none empty)."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start() + len(match.group(1))
        words = text[start:end].rstrip(".!?\"'\u201d\u2019)]").rsplit(None, 1)
        if words and words[-1].lower() in _ABBREVIATIONS:
            continue
        sentences.append(text[start:end].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]
