"""Sentence splitting shared by augmentation and finetuning.

The study splits multi-sentence documents into one training example per sentence (independently or
cumulatively). The datasets' sentences may start with a lowercase nonsense word (``femp are ...``), so a
split cannot wait for a capital letter; it breaks after ., ! or ? (optionally followed by a closing
quote) and white space. The generated texts contain no abbreviations, which is what makes this safe.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r'(?<=[.!?])\s+|(?<=[.!?]["\u201d])\s+')


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _BOUNDARY.split(text.strip()) if part.strip()]
