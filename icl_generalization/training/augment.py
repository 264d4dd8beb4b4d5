"""Augmentation with in-context inferences: the model rewrites the training data it will be finetuned on.

Two modes (PAPER.md, "The method"):

- ``local``: one call per training sentence (one per item for syllogisms, whose premises only make sense
  together), with a few-shot prompt demonstrating rephrasings and reversals; several outputs per input.
- ``global``: the training corpus (or the largest sample of it that fits the window, drawn as the in-context
  tasks draw it) in context, then one document, then an instruction to draw connections. The corpus is the
  same prefix for every document, so its key/value cache is computed once (``prefix_cache``) and reused.

The output is append-only JSONL, one line per output, carrying the source id, prompt version, model and
seed, so an interrupted run resumes where it stopped with no duplicate and no gap.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icl_generalization.core.errors import UserError
from icl_generalization.data.records import Dataset, iter_jsonl
from icl_generalization.training.backends import GenerationBackend, Sampling
from icl_generalization.training.text import split_sentences

MODES = ("local", "global")
PROMPT_VERSION = "v1"
# Families whose training documents are single items rather than articles: one local call per document.
# (A syllogism's premises only make sense together; a reversal-curse document such as "Have you come across
# X? They are Y." states one fact over two sentences.)
ITEM_FAMILIES = frozenset({"syllogism", "reversal_curse"})
GLOBAL_SPLIT = "\n\n{document}"


@dataclass(frozen=True)
class AugmentConfig:
    mode: str = "local"
    outputs_per_input: int = 3
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 96
    seed: int = 0
    batch_size: int = 8
    limit: int | None = None
    # Augment a seeded random sample of this many documents instead of the first ``limit``: a small run
    # then covers every entity rather than the first few.
    sample: int | None = None
    clean: bool = False
    # Global mode: tokens the corpus part may take (default: the model's window minus room for the rest).
    context_budget: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
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
    source_id: str  # "<doc id>" or "<doc id>#<sentence index>"
    text: str
    doc_id: str


@dataclass
class AugmentStats:
    inputs: int = 0
    inputs_skipped_as_done: int = 0
    outputs_written: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    prefix_computations: int = 0
    prefix_tokens: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"empty": 0, "runaway": 0, "duplicate": 0})

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def prompt_template(mode: str) -> str:
    # The prompts folder ships next to this module in wheels and checkouts alike (importlib.resources would
    # hand back a multiplexed path for the data-only package in an editable install).
    return (Path(__file__).parent / "prompts" / f"augment_{mode}_{PROMPT_VERSION}.txt").read_text(encoding="utf-8")


def augment_inputs(ds: Dataset, mode: str, limit: int | None, sample: int | None = None,
                   seed: int = 0) -> list[AugmentInput]:
    """What gets one call each: sentences (local mode) or whole documents (global mode, item families)."""
    docs = [d for d in ds.train if d.kind == "document"]
    if sample is not None and sample < len(docs):
        keep = set(random.Random(f"{seed}:sample").sample(range(len(docs)), sample))
        docs = [d for i, d in enumerate(docs) if i in keep]
    docs = docs[:limit]
    if mode == "global" or ds.family in ITEM_FAMILIES:
        return [AugmentInput(source_id=d.id, text=d.text, doc_id=d.id) for d in docs]
    inputs = []
    for doc in docs:
        sentences = split_sentences(doc.text)
        if len(sentences) == 1:
            inputs.append(AugmentInput(source_id=doc.id, text=doc.text, doc_id=doc.id))
        else:
            inputs += [AugmentInput(source_id=f"{doc.id}#{i}", text=s, doc_id=doc.id) for i, s in enumerate(sentences)]
    return inputs


def clean_output(text: str, hit_limit: bool, seen: set[str]) -> str | None:
    """Why an output would be dropped by --clean (None: keep it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "empty"
    repeated = len(lines) - len(set(lines))
    if hit_limit and (repeated >= 2 or not lines[-1].endswith((".", "!", "?", '"'))) and repeated:
        return "runaway"
    if repeated >= 3:
        return "runaway"
    key = " ".join(text.lower().split())
    if key in seen:
        return "duplicate"
    seen.add(key)
    return None


def trim_local(text: str) -> str:
    """Local outputs stop where the model starts inventing the next few-shot example."""
    for stop in ("\nStatement:", "\n\n"):
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    return text.strip()


class CorpusWriter:
    """Append-only JSONL with resume: each line is written whole and flushed, a torn last line is dropped."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.done: set[tuple[str, int]] = set()
        self.seen_texts: set[str] = set()
        if path.exists():
            self._load()
        path.parent.mkdir(parents=True, exist_ok=True)

    def _load(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # A run killed mid-write leaves a partial line: drop it, it is regenerated.
            with self.path.open("r+b") as fh:
                fh.truncate(raw.rfind(b"\n") + 1)
        for _, row in iter_jsonl(self.path):
            mismatch = {k: (row.get(k), v) for k, v in self.identity.items() if row.get(k) != v}
            if mismatch:
                details = ", ".join(f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in mismatch.items())
                raise UserError(f"{self.path} was written by a different run ({details}); "
                                "resume with the same settings or choose another --out")
            self.done.add((row["source_id"], row["sample"]))
            self.seen_texts.add(" ".join(row["text"].lower().split()))

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        payload = "".join(json.dumps({**self.identity, **row}, ensure_ascii=False) + "\n" for row in rows)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())


def batches(items: list[AugmentInput], size: int) -> Iterator[list[AugmentInput]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def input_seed(seed: int, source_id: str) -> int:
    """A seed derived from the run's seed and an input's id.

    Global mode seeds every input with its own, so a resumed run samples those inputs exactly as an
    uninterrupted one would; local mode samples a whole batch at once and seeds it with its first input's,
    so after a resume the batches (and their samples) may differ, without duplicates or gaps.
    """
    return random.Random(f"{seed}:{source_id}").randrange(2**31)


def global_prompt_parts(ds: Dataset, count_tokens: Any, window: int, config: AugmentConfig,
                        longest_document: str) -> tuple[str, str]:
    """Split the global prompt into the shared corpus prefix and the per-document suffix template."""
    template = prompt_template("global")
    head, tail = template.split("{corpus}")
    marker = tail.index(GLOBAL_SPLIT)
    fixed_prefix, suffix_template = tail[:marker], tail[marker:]
    room = config.context_budget or (window - config.max_new_tokens - 16)
    room -= count_tokens(head + fixed_prefix) + count_tokens(suffix_template.format(document=longest_document))
    if room <= 0:
        raise UserError(f"global augmentation: the model's window ({window} tokens) leaves no room for the corpus "
                        f"after the document, instruction and {config.max_new_tokens} new tokens")
    docs = [d for d in ds.train if d.kind == "document"]
    rng = random.Random(f"{config.seed}:global-corpus")
    order = list(range(len(docs)))
    rng.shuffle(order)
    chosen: list[int] = []
    used = 0
    for i in order:  # the whole corpus when it fits, else a random sample up to the room, as the ICL tasks do
        cost = count_tokens(docs[i].text + "\n")
        if used + cost <= room:
            chosen.append(i)
            used += cost
    corpus = "".join(docs[i].text + "\n" for i in sorted(chosen))
    return head + corpus + fixed_prefix, suffix_template


def run_augment(ds: Dataset, model: str, out: Path, config: AugmentConfig, backend: GenerationBackend,
                progress: bool = True) -> AugmentStats:
    """Augment ``ds`` with ``backend`` (any :class:`GenerationBackend`) into the JSONL corpus ``out``."""
    from tqdm import tqdm

    identity = {"mode": config.mode, "prompt_version": f"{config.mode}_{PROMPT_VERSION}", "model": model,
                "dataset_fingerprint": ds.fingerprint(), "seed": config.seed, "temperature": config.temperature,
                "top_p": config.top_p, "max_new_tokens": config.max_new_tokens}
    writer = CorpusWriter(out, identity)
    inputs = augment_inputs(ds, config.mode, config.limit, config.sample, config.seed)
    n = config.outputs_per_input
    todo = [i for i in inputs if any((i.source_id, k) not in writer.done for k in range(n))]
    stats = AugmentStats(inputs=len(inputs), inputs_skipped_as_done=len(inputs) - len(todo))
    sampling = Sampling(n=n, temperature=config.temperature, top_p=config.top_p,
                        max_new_tokens=config.max_new_tokens)
    prefix = suffix_template = ""
    if config.mode == "global" and todo:
        longest = max((i.text for i in todo), key=backend.count_tokens)
        prefix, suffix_template = global_prompt_parts(ds, backend.count_tokens, backend.window, config, longest)
        stats.prefix_tokens = backend.count_tokens(prefix)
    local_template = prompt_template("local") if config.mode == "local" else ""
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"augment ({config.mode})", unit="input", disable=not progress)
    for batch in batches(todo, config.batch_size):
        seeds = [input_seed(config.seed, i.source_id) for i in batch]
        if config.mode == "local":
            samples = backend.generate([local_template.format(document=i.text) for i in batch], sampling, seeds[0])
        else:
            samples = backend.after_prefix(prefix, [suffix_template.format(document=i.text) for i in batch],
                                           sampling, seeds)
        rows = []
        for item, outputs in zip(batch, samples, strict=True):
            for k, sample in enumerate(outputs):
                if (item.source_id, k) in writer.done:
                    continue
                text = trim_local(sample.text) if config.mode == "local" else sample.text.strip()
                dropped = clean_output(text, sample.hit_limit, writer.seen_texts) if config.clean else None
                if dropped:
                    stats.dropped[dropped] += 1
                rows.append({"source_id": item.source_id, "doc_id": item.doc_id, "sample": k, "text": text,
                             "new_tokens": sample.new_tokens, "hit_limit": sample.hit_limit, "dropped": dropped})
                stats.new_tokens += sample.new_tokens
        writer.append(rows)
        stats.outputs_written += len(rows)
        stats.seconds = time.perf_counter() - start
        bar.update(len(batch))
        bar.set_postfix(tok_per_s=f"{stats.tokens_per_second:.1f}")
    bar.close()
    stats.prefix_computations = backend.prefix_computations
    return stats
