"""Sampling whose draws for a prompt depend on that prompt's seed only, whatever else shares its batch.

``generate(do_sample=True)`` draws every row's next token from one global random stream, so what a prompt gets
depends on which prompts run beside it, and in what order. Here each prompt owns a ``torch.Generator`` seeded
from its own seed, and sampling is the Gumbel-max trick: after transformers' own temperature / top-k / top-p
warpers, every allowed token's score gets independent Gumbel noise from the row's generator, and the argmax of
the noisy scores is a draw from ``softmax(scores)`` (Gumbel 1954; the ``argmax(log p - log E)`` form with
``E ~ Exp(1)``). ``generate`` then runs greedy (``do_sample=False``) and picks that argmax, so the rest of its loop
(stopping, padding finished rows, the cache) is unchanged.

The noise is drawn on the CPU in float64: the same seed gives the same draws on any device, and an ``Exp(1)``
draw of exactly 0 (which would make its token certain) has probability 2**-53 instead of float32's 2**-24 per
element, which over a 49,152-token vocabulary would be a 0.3% chance per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


@dataclass(frozen=True)
class Decoding:
    """How to choose each next token: greedy at ``temperature == 0``, else sampling from
    ``softmax(logits / temperature)`` restricted to the ``top_k`` most likely tokens (``None``: all) and then to
    the smallest set holding ``top_p`` of the probability (transformers' order of warpers)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be 0 (greedy) or positive, got {self.temperature!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def warpers(self) -> LogitsProcessorList:
        """transformers' warpers for these settings, in the order ``generate`` applies them when sampling."""
        warpers = LogitsProcessorList()
        if self.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k is not None:
            warpers.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1.0:
            warpers.append(TopPLogitsWarper(self.top_p))
        return warpers


class SeededGumbelSampler(LogitsProcessor):
    """Turns greedy decoding into sampling with one random stream per seed.

    The batch holds ``rows_per_seed`` consecutive rows per seed (a prompt's ``n`` samples): each step draws a
    ``[rows_per_seed, vocab]`` block of noise from that seed's generator, so a row's tokens depend only on its
    seed, its place among its prompt's samples and its own scores. Rows that already stopped still draw (and
    ``generate`` discards their tokens), which keeps every stream in step with its own sequence's length.
    """

    def __init__(self, decoding: Decoding, seeds: Sequence[int], rows_per_seed: int) -> None:
        if decoding.greedy:
            raise ValueError("greedy decoding takes no noise; run generate without a sampler")
        self.warpers = decoding.warpers()
        self.rows_per_seed = rows_per_seed
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators) * self.rows_per_seed:
            raise ValueError(f"{scores.shape[0]} rows of scores for {len(self.generators)} seeds x "
                             f"{self.rows_per_seed} rows each")
        warped = self.warpers(input_ids, scores)
        shape = (self.rows_per_seed, scores.shape[-1])
        exponential = torch.cat([torch.empty(shape, dtype=torch.float64).exponential_(generator=g)
                                 for g in self.generators])
        # -log(Exp(1)) is Gumbel(0, 1); filtered tokens stay at -inf.
        gumbel = (-exponential.log()).to(device=scores.device, dtype=warped.dtype)
        return cast(torch.FloatTensor, warped + gumbel)
