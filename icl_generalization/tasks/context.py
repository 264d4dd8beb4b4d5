"""Building in-context prompts inside a token budget measured with the model's own tokenizer.

lm-eval's HF model left-truncates an over-long prompt with only a log line, which for an in-context task
silently drops the evidence. So every context is sized here, and a prompt that cannot fit is an error.

Strategy (the study's "paper mode" first, sharding as the fallback):

1. the whole training set, if it fits;
2. else an 8x random subsample (plus, for each question, its evidence: see below), if it fits;
3. else questions are packed into as few shards as possible; every shard has one identical context holding the
   evidence of its questions, topped up with randomly drawn other documents to the budget.

A question's evidence is a document stating each fact it needs *and* a document mentioning each of its options.
Without the second part a short context holds the gold answer's documents but rarely the distractors', so "the
option that appears in the context" would pick the gold without any inference (the shortcut audit's "present in
context" and "count in context" baselines). With it every option is present, and the gold is mentioned once more
than a distractor only as often as the random top-up makes it so. A budget that cannot hold one question's
evidence is an error (a sweep skips that length and records why).

Questions of one shard share their context verbatim, so a prefix cache computes it once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from icl_generalization.core.errors import ContextBudgetError
from icl_generalization.data.records import TestItem, TrainDoc
from icl_generalization.data.shortcut_baselines import Corpus

HEADER = "Read the following documents carefully. They are all true.\n\n"
INSTRUCTION = "\nUse the documents above to complete the next statement.\n"
DOC_SEPARATOR = "\n"
SUBSAMPLE_FACTOR = 8
# Documents per option (on average) that evening out one question's option counts may add: about one suffices;
# the bound keeps it finite when documents mention several options at once.
BALANCE_STEPS = 4
# Recorded in every in-context task's provenance and part of its cache key: bump it whenever the contexts or the
# rows built from the same data change. 2: a document for each option in every context; rows interleaved by the
# family's cluster key; a ``cluster`` field in every row. 3: a ``form`` field in the rows of families with forms.
CONTEXT_VERSION = 3
ContextMode = Literal["auto", "full", "subsample", "shard"]
MODES: tuple[ContextMode, ...] = get_args(ContextMode)


@dataclass(frozen=True)
class Shard:
    doc_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    context: str
    n_tokens: int
    strategy: str  # "full", "subsample" or "shard"


def render_context(docs: Sequence[TrainDoc]) -> str:
    return HEADER + "".join(doc.text + DOC_SEPARATOR for doc in docs) + INSTRUCTION


class ContextBuilder:
    """Plans the contexts of one in-context task.

    ``count_tokens`` is the model tokenizer's length function; ``budget`` is the number of tokens the whole
    prompt (context, question and the longest choice) may take.
    """

    def __init__(self, docs: Sequence[TrainDoc], count_tokens: Callable[[str], int], budget: int,
                 rng: random.Random, task: str = "task", mode: ContextMode = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"context mode must be one of {MODES}, got {mode!r}")
        self.docs = {d.id: d for d in docs}
        self.order = [d.id for d in docs]
        self.count = count_tokens
        self.budget = budget
        self.rng = rng
        self.task = task
        self.mode = mode
        self._overhead = count_tokens(HEADER + INSTRUCTION)
        self._doc_tokens = {d.id: count_tokens(d.text + DOC_SEPARATOR) for d in docs}
        # "Mentions an option" is what the shortcut audit calls it (its Corpus: the option's phrase, verbatim,
        # case-insensitive), so the contexts answer exactly the cue the audit measures.
        self._corpus = Corpus([d.text for d in docs])
        self._mentions: dict[str, list[str]] = {}

    def _mentioning(self, option: str) -> list[str]:
        """Ids of the documents mentioning ``option``, in training order (empty when none does)."""
        if option not in self._mentions:
            self._mentions[option] = [self.order[i] for i in sorted(self._corpus.docs_with(option))]
        return self._mentions[option]

    def _evidence(self, item: TestItem, chosen: set[str]) -> list[str]:
        """A document per needed fact, then documents until every option is mentioned as often as the most
        mentioned one among them.

        Counts, not only presence: the documents stating a fact often name the gold more than once, or name
        sibling options too, and a bare "one document per option" would leave "mentioned most" as a cue. The
        balance is kept within the question's own evidence: a shard's other questions bring documents that
        mention this question's options too, but evening those out as well is a zero-sum game when one
        question's distractor is another's gold (semantic categories), and it fills the context with evidence.
        Documents already chosen are preferred (so shards stay small), and among the candidates for one option
        a document naming no other option of the question, so that raising one option does not raise another.
        An option no training document mentions cannot be given one; the audit's training baselines report that
        as a property of the data.
        """
        picks: list[str] = []
        for alternatives in item.needs:
            present = [d for d in alternatives if d in chosen]
            picks.append(present[0] if present else self.rng.choice(sorted(alternatives)))
        have = set(picks)
        mentions = [set(self._mentioning(option)) for option in item.choices]
        for _ in range(BALANCE_STEPS * len(mentions)):
            counts = [len(m & have) for m in mentions]
            short = [i for i, n in enumerate(counts) if n < max(counts) and mentions[i] - have]
            if not short:
                break
            # One document at a time, for the least mentioned option: a document may mention several options.
            i = min(short, key=lambda j: counts[j])
            candidates = sorted(mentions[i] - have)
            clean = [d for d in candidates if not any(d in m for j, m in enumerate(mentions) if j != i)] or candidates
            pick = self.rng.choice([d for d in clean if d in chosen] or clean)
            have.add(pick)
            picks.append(pick)
        return list(dict.fromkeys(picks))

    def _tail_tokens(self, item: TestItem) -> int:
        return self.count(item.prompt + max(item.choices, key=len)) + 2

    def plan(self, items: Sequence[TestItem]) -> list[Shard]:
        if not items:
            return []
        tail = max(self._tail_tokens(i) for i in items)
        room = self.budget - tail - self._overhead
        if room <= 0:
            raise ContextBudgetError(
                f"{self.task}: a budget of {self.budget} tokens cannot hold even the question and its longest "
                f"choice ({tail} tokens) plus the instructions ({self._overhead} tokens)")
        total = sum(self._doc_tokens.values())
        if self.mode in ("auto", "full") and total <= room:
            return [self._shard(self.order, items, "full")]
        if self.mode == "full":
            raise ContextBudgetError(f"{self.task}: the whole training set ({total} tokens) does not fit the "
                                     f"context budget ({room} tokens for documents)")
        if self.mode in ("auto", "subsample"):
            needed: dict[str, None] = {}
            for item in items:
                needed.update(dict.fromkeys(self._evidence(item, set(needed))))
            target = max(len(self.order) // SUBSAMPLE_FACTOR, len(needed))
            chosen = self._top_up(list(needed), target_docs=target, room=room)
            if sum(self._doc_tokens[d] for d in chosen) <= room and len(chosen) >= target:
                return [self._shard(chosen, items, "subsample")]
            if self.mode == "subsample":
                raise ContextBudgetError(f"{self.task}: an {SUBSAMPLE_FACTOR}x subsample of the training set "
                                         f"does not fit the context budget ({room} tokens for documents)")
        return self._shards(items, room)

    def _shards(self, items: Sequence[TestItem], room: int) -> list[Shard]:
        groups: list[tuple[list[str], list[TestItem]]] = []
        for item in items:
            placed = False
            for doc_ids, members in groups:
                evidence = self._evidence(item, set(doc_ids))
                extra = [d for d in evidence if d not in doc_ids]
                used = sum(self._doc_tokens[d] for d in doc_ids) + sum(self._doc_tokens[d] for d in extra)
                if used <= room and self._keeps_balance(item, evidence, members, set(doc_ids), set(extra)):
                    doc_ids.extend(extra)
                    members.append(item)
                    placed = True
                    break
            if not placed:
                need = self._evidence(item, set())
                size = sum(self._doc_tokens[d] for d in need)
                if size > room:
                    raise ContextBudgetError(
                        f"{self.task}: question {item.id} needs {len(need)} documents ({size} tokens: its facts "
                        f"and ones mentioning each option as often), more than the {room} tokens the budget of "
                        f"{self.budget} leaves for documents")
                groups.append((need, [item]))
        return [self._shard(self._top_up(doc_ids, None, room), members, "shard") for doc_ids, members in groups]

    def _spread(self, item: TestItem, docs: set[str]) -> int:
        """How many more documents of ``docs`` mention the item's most mentioned option than its least."""
        counts = [len(docs.intersection(m)) for m in map(self._mentioning, item.choices) if m]
        return max(counts) - min(counts) if counts else 0

    def _keeps_balance(self, item: TestItem, evidence: list[str], members: Sequence[TestItem], docs: set[str],
                       extra: set[str]) -> bool:
        """Whether a shard may take ``item``: no question's options end up mentioned less evenly than before.

        One question's evidence can name another's options (a distractor here is a gold there); such questions
        go to separate shards instead, so every shard's option counts are as even as each question's own.
        """
        joined = docs | extra
        return (self._spread(item, joined) <= self._spread(item, set(evidence))
                and all(self._spread(m, joined) <= self._spread(m, docs) for m in members))

    def _top_up(self, doc_ids: list[str], target_docs: int | None, room: int) -> list[str]:
        """Add randomly drawn other documents until the room (or the target count) is reached."""
        chosen = list(dict.fromkeys(doc_ids))
        used = sum(self._doc_tokens[d] for d in chosen)
        others = [d for d in self.order if d not in set(chosen)]
        self.rng.shuffle(others)
        for doc_id in others:
            if target_docs is not None and len(chosen) >= target_docs:
                break
            if used + self._doc_tokens[doc_id] > room:
                continue
            chosen.append(doc_id)
            used += self._doc_tokens[doc_id]
        return chosen

    def _shard(self, doc_ids: Sequence[str], items: Sequence[TestItem], strategy: str) -> Shard:
        ordered = list(doc_ids)
        # Shuffled so that the needed documents are not always at the end, next to the question.
        self.rng.shuffle(ordered)
        context = render_context([self.docs[d] for d in ordered])
        n_tokens = self.count(context)
        longest = max(items, key=self._tail_tokens)
        total = self.count(context + longest.prompt + max(longest.choices, key=len))
        if total > self.budget:
            raise ContextBudgetError(
                f"{self.task}: prompt of {total} tokens (context {n_tokens}) exceeds the budget of {self.budget}")
        return Shard(doc_ids=tuple(ordered), item_ids=tuple(i.id for i in items), context=context,
                     n_tokens=n_tokens, strategy=strategy)
