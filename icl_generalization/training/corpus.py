"""Training examples for finetuning: sentence splitting, the augmented corpus, tokens and loss masks.

An example is ``(context, prompt, completion)``:

- ``context``: preceding sentences of the same document (cumulative splitting). Never scored: it is there
  so the target sentence is read in place, as the paper describes.
- ``prompt``: a leading part of the target that is a question (question-answer documents). Scored only
  when the recipe's loss mode is ``document``.
- ``completion``: always scored.

Tokens follow lm-eval's scoring conventions so training and evaluation see the same sequences: no special
tokens at the start (HFLM scores continuations without a BOS), each part tokenized on its own and joined
with a leading space (BPE tokenizers attach the space to the next word, so this equals tokenizing the
joined string), and an end-of-sequence token after the completion so the model learns where a fact stops.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icl_generalization.core.digest import sha256_parts
from icl_generalization.core.errors import DataError, UserError
from icl_generalization.data.records import TrainDoc, read_jsonl
from icl_generalization.training.text import split_sentences

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips

@dataclass(frozen=True)
class Example:
    completion: str
    context: str = ""
    prompt: str = ""
    source: str = ""  # document id or corpus line, for provenance


def _question_answer(text: str) -> tuple[str, str]:
    """Split a question-answer document at its first question mark: the question is the prompt."""
    cut = text.find("?")
    if cut < 0 or not text[cut + 1:].strip():
        return "", text.strip()
    return text[: cut + 1].strip(), text[cut + 1:].strip()


def examples_from_text(text: str, split: str, source: str = "", kind: str = "document") -> list[Example]:
    if kind == "qa":
        # A question and its answer are one unit: splitting them apart would train the answer alone.
        prompt, completion = _question_answer(text)
        return [Example(completion=completion, prompt=prompt, source=source)]
    if split == "none":
        return [Example(completion=text.strip(), source=source)]
    sentences = split_sentences(text)
    if split == "independent":
        return [Example(completion=s, source=source) for s in sentences]
    if split == "cumulative":
        return [Example(completion=s, context=" ".join(sentences[:i]), source=source)
                for i, s in enumerate(sentences)]
    raise ValueError(f"split must be none, independent or cumulative, got {split!r}")


def build_examples(docs: Iterable[TrainDoc], corpus: Sequence[dict[str, Any]], split: str) -> list[Example]:
    """The training examples of the family's documents followed by those of the augmented corpus."""
    out: list[Example] = []
    for doc in docs:
        out += examples_from_text(doc.text, split, source=doc.id, kind=doc.kind)
    for i, row in enumerate(corpus):
        source = str(row.get("source_id") or f"corpus:{i + 1}")
        out += examples_from_text(row["text"], split, source=f"aug:{source}", kind=str(row.get("kind", "document")))
    return out


def read_corpus(path: Path) -> list[dict[str, Any]]:
    """The kept outputs of an augmented corpus (JSONL with a string ``text`` per line).

    Lines that ``icl-gen augment --clean`` marked ``dropped``, and empty outputs, are left out: they are
    recorded so a resumed augmentation knows they were done, not to be trained on.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"augmented corpus not found: {path}")
    rows = read_jsonl(path)
    for lineno, row in enumerate(rows, start=1):
        if not isinstance(row.get("text"), str):
            raise DataError(f"{path}: record {lineno} has no string field 'text'; not an augmentation corpus")
    kept = [row for row in rows if not row.get("dropped") and row["text"].strip()]
    if not kept:
        raise DataError(f"{path}: the augmented corpus has no usable text ({len(rows)} lines, all empty or dropped)")
    return kept


def examples_sha256(examples: Sequence[Example]) -> str:
    """A digest of exactly what is trained on (after splitting), in order."""
    return sha256_parts(json.dumps([ex.context, ex.prompt, ex.completion], ensure_ascii=False).encode() + b"\n"
                        for ex in examples)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode(example: Example, tokenizer: Any, loss: str, max_length: int) -> Encoded:
    """Token ids and labels of one example; unscored positions get ``IGNORE_INDEX``."""

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    parts = [p for p in (example.context, example.prompt) if p]
    context_ids = ids(example.context)
    prompt_ids = ids((" " if example.context else "") + example.prompt) if example.prompt else []
    completion_ids = ids((" " if parts else "") + example.completion)
    if tokenizer.eos_token_id is not None:
        completion_ids.append(tokenizer.eos_token_id)
    scored_prompt = loss == "document"
    truncated = False
    # Too long: drop context from the left first (it is only there to be read), then cut the end.
    overflow = len(context_ids) + len(prompt_ids) + len(completion_ids) - max_length
    if overflow > 0:
        truncated = True
        cut = min(overflow, len(context_ids))
        context_ids = context_ids[cut:]
        overflow -= cut
    input_ids = context_ids + prompt_ids + completion_ids
    labels = ([IGNORE_INDEX] * len(context_ids) + (prompt_ids if scored_prompt else [IGNORE_INDEX] * len(prompt_ids))
              + completion_ids)
    if overflow > 0:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return Encoded(input_ids=input_ids, labels=labels, truncated=truncated)


class Collator:
    """Right-pads a batch; padded positions are masked out of attention and loss (by length, not token id,
    because many tokenizers pad with the end-of-sequence token that the labels must keep)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        batch: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            pad = width - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_token_id] * pad)
            batch["attention_mask"].append([1] * len(f["input_ids"]) + [0] * pad)
            batch["labels"].append(f["labels"] + [IGNORE_INDEX] * pad)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
