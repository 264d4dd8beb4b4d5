"""Strategies that rewrite the training documents without a model: repetition and reverse training.

Reverse training (Golovneva et al. 2024, "Reverse training to nurse the reversal curse") trains on the text
with its order reversed, so a fact read "A is B" is also seen with B before A. Two of its variants:

- ``reverse_word``: every word (and punctuation mark) in reverse order;
- ``reverse_entity``: the same, but the entity names stay whole and in reading order, so ``Cyprian Ingleby``
  is reversed as one unit, not into ``Ingleby Cyprian``. The entities are those the family's records list
  (``TrainDoc.entities``) and the names a document quotes (``base.document_entities``): no entity tagger, so
  a family whose records list no multi-word names reverses exactly as ``reverse_word`` does.

Both are deterministic: one output per document, the same on every run. ``repeat`` (the documents again,
unchanged) is the control that adds the same number of tokens and nothing new.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from icl_generalization.data.records import Dataset
from icl_generalization.training.backends import GenerationBackend
from icl_generalization.training.strategies.base import (
    AugmentConfig,
    AugmentInput,
    Output,
    Started,
    chosen_documents,
    whole_documents,
)

# A word keeps its inner apostrophes and hyphens ("it's", "well-known"); any other mark is a unit of its own.
_UNIT = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")


def reverse_words(text: str) -> str:
    """Words and punctuation marks of ``text`` in reverse order, joined by single spaces."""
    return " ".join(reversed(_UNIT.findall(text)))


def reverse_keeping_entities(text: str, entities: tuple[str, ...]) -> str:
    """As :func:`reverse_words`, with each occurrence of an entity name kept as one unit in reading order.

    Longer names are matched first (a name that contains another is one entity), and only at word
    boundaries (the entity ``glon`` is not found inside ``glons``)."""
    names = sorted({e for e in entities if e.strip()}, key=len, reverse=True)
    if not names:
        return reverse_words(text)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)")
    units: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        units += _UNIT.findall(text[start:match.start()])
        units.append(match.group(0))
        start = match.end()
    units += _UNIT.findall(text[start:])
    return " ".join(reversed(units))


@dataclass(frozen=True)
class Rewrite:
    """A model-free strategy: one deterministic rewrite of each chosen document."""

    name: str
    description: str
    transform: Callable[[AugmentInput], str]
    uses_model: bool = False

    @property
    def version(self) -> str:
        return f"{self.name}_v1"  # bump when the rule changes, as a prompt file's version is

    def inputs(self, ds: Dataset, config: AugmentConfig) -> list[AugmentInput]:
        return whole_documents(chosen_documents(ds, config))

    def start(self, ds: Dataset, inputs: list[AugmentInput], config: AugmentConfig,
              backend: GenerationBackend | None) -> Started:
        def produce(batch: list[AugmentInput], seeds: list[int]) -> list[list[Output]]:
            return [[Output(text=self.transform(item))] for item in batch]

        return Started(produce=produce, outputs_per_input=1)


REPEAT = Rewrite("repeat", "the training documents again, unchanged (the control: tokens with nothing new)",
                 lambda item: item.text)
REVERSE_WORD = Rewrite("reverse_word", "reverse training, word level: every word and mark in reverse order",
                       lambda item: reverse_words(item.text))
REVERSE_ENTITY = Rewrite("reverse_entity", "reverse training, entity-preserving: words reversed, the family's "
                         "entity names kept whole", lambda item: reverse_keeping_entities(item.text, item.entities))
