"""The strategy seam: every way of turning training documents into extra finetuning text is one ``Strategy``.

A strategy names its inputs (documents, sentences, entity pairs...) and, once per run, starts a ``Producer``
that turns a batch of inputs into outputs: through the model (a ``GenerationBackend``) for the paper's local
and global augmentation and for the rival methods that prompt the model, or by rewriting the text itself for
the model-free ones. ``augment.run_augment`` drives every strategy the same way (resume, cleaning, token
accounting), so a new method is one class and one registry line (``strategies/__init__.py``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from icl_generalization.data.records import Dataset, TrainDoc
from icl_generalization.training.backends import GenerationBackend

PROMPT_VERSION = "v1"
_QUOTED = re.compile(r"\"([^\"]{2,80})\"")


@dataclass(frozen=True)
class AugmentConfig:
    # The strategy's registry name (``mode`` for the paper's two: local, global); checked by ``get_strategy``.
    mode: str = "local"
    outputs_per_input: int = 3
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 96
    seed: int = 0
    batch_size: int = 8
    limit: int | None = None
    # Augment a seeded random sample of this many inputs' documents instead of the first ``limit``: a small
    # run then covers every entity rather than the first few (entity-graph synthesis: of this many pairs).
    sample: int | None = None
    clean: bool = False
    # Global mode: tokens the corpus part may take (default: the model's window minus room for the rest).
    context_budget: int | None = None

    def __post_init__(self) -> None:
        if not self.mode:
            raise ValueError("mode must name a strategy")
        if self.outputs_per_input < 1:
            raise ValueError(f"outputs_per_input must be >= 1, got {self.outputs_per_input}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be in [0, 5], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature == 0.0 and self.outputs_per_input != 1:
            raise ValueError("temperature 0 (greedy decoding) gives one output per input; set outputs_per_input=1")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.sample is not None and (self.sample < 1 or self.limit is not None):
            raise ValueError(f"sample must be >= 1 and cannot be combined with limit, got {self.sample}")


@dataclass(frozen=True)
class AugmentInput:
    source_id: str  # "<doc id>", "<doc id>#<sentence index>" or "pair:<entity>|<entity>"
    text: str
    doc_id: str
    # What the prompt needs besides ``text`` (entity-graph synthesis: the two entities).
    entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Output:
    text: str
    new_tokens: int = 0  # tokens the model generated (0 for a model-free strategy)
    hit_limit: bool = False


# Outputs for a batch of inputs, one list per input, given one seed per input.
Producer = Callable[[list[AugmentInput], list[int]], list[list[Output]]]


@dataclass(frozen=True)
class Started:
    produce: Producer
    # Outputs per input: the config's ``outputs_per_input`` (None) or fixed (a deterministic rewrite gives one).
    outputs_per_input: int | None = None
    prefix_tokens: int = 0  # tokens of a shared prefix (global mode), reported in the statistics


class Strategy(Protocol):
    """One way of producing finetuning text from a family's training documents."""

    # Read-only (properties), so frozen dataclasses implement it.
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """Written into every output line, so a corpus says which prompt (or rule) produced it."""
        ...

    @property
    def uses_model(self) -> bool:
        """Whether it needs a GenerationBackend; a model-free strategy runs without loading the model."""
        ...

    @property
    def description(self) -> str:
        """One line for `icl-gen augment --help` and the docs."""
        ...

    def inputs(self, ds: Dataset, config: AugmentConfig) -> list[AugmentInput]:
        """What gets one call each, in a fixed order (a resumed run skips the inputs already written)."""
        ...

    def start(self, ds: Dataset, inputs: list[AugmentInput], config: AugmentConfig,
              backend: GenerationBackend | None) -> Started:
        """Prepare once per run (a global prompt's corpus prefix) and return the producer of outputs."""
        ...


def prompt_template(name: str) -> str:
    # The prompts folder ships next to this package in wheels and checkouts alike (importlib.resources would
    # hand back a multiplexed path for the data-only package in an editable install).
    path = Path(__file__).parent.parent / "prompts" / f"augment_{name}_{PROMPT_VERSION}.txt"
    return path.read_text(encoding="utf-8")


def chosen_documents(ds: Dataset, config: AugmentConfig) -> list[TrainDoc]:
    """The documents a run works from: all (kind ``document``), the first ``limit`` or a seeded ``sample``."""
    docs = [d for d in ds.train if d.kind == "document"]
    if config.sample is not None and config.sample < len(docs):
        keep = set(random.Random(f"{config.seed}:sample").sample(range(len(docs)), config.sample))
        docs = [d for i, d in enumerate(docs) if i in keep]
    return docs[:config.limit]


def document_entities(doc: TrainDoc) -> tuple[str, ...]:
    """The entities a document names: those its record lists, then the names it quotes (the reversal curse's
    records list the person; the work they are known for is in quotes, "Wandering Archive")."""
    quoted = [q for q in _QUOTED.findall(doc.text) if q.strip()]
    return tuple(dict.fromkeys([*doc.entities, *quoted]))


def whole_documents(docs: list[TrainDoc]) -> list[AugmentInput]:
    return [AugmentInput(source_id=d.id, text=d.text, doc_id=d.id, entities=document_entities(d)) for d in docs]
