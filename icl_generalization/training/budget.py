"""Matched token budgets: every strategy's added text cut or repeated to the same number of tokens.

Comparing knowledge-injection methods per token spent needs each to add the same amount of training text.
:func:`match_budget` takes a strategy's corpus (its kept lines) and returns lines adding ``budget`` tokens
under the model's tokenizer, deterministically:

1. the lines in a seeded random order (a small budget samples the corpus evenly, not its first documents);
2. whole lines while they fit; a corpus smaller than the budget is gone through again (each pass in the same
   order, every line marked with its ``pass``), so a short strategy is repeated rather than favoured;
3. the line that would overflow is cut to the remaining tokens (decoded from its first token ids).

A cut line is re-tokenized as text, which can merge or split a token at the cut: the tokens actually added
are counted again and recorded, never assumed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from icl_generalization.core.errors import UserError


class TokenText(Protocol):
    """The model's tokenizer, as budgets need it."""

    def count(self, text: str) -> int: ...

    def head(self, text: str, tokens: int) -> str:
        """The text of the first ``tokens`` tokens of ``text``."""
        ...


class TokenizerText:
    """:class:`TokenText` over a transformers tokenizer (no special tokens: the corpus text alone)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count(self, text: str) -> int:
        return len(self._ids(text))

    def head(self, text: str, tokens: int) -> str:
        return str(self.tokenizer.decode(self._ids(text)[:tokens], skip_special_tokens=True)).strip()


@dataclass(frozen=True)
class Matched:
    rows: list[dict[str, Any]]
    budget: int
    tokens_added: int  # counted again after the cut
    source_lines: int
    source_tokens: int
    passes: int  # how many times the corpus was gone through (2+: it was repeated)
    cut_line: bool


def match_budget(rows: list[dict[str, Any]], budget: int, tokens: TokenText, seed: int) -> Matched:
    """Lines of ``rows`` (dicts with a ``text``) adding ``budget`` tokens; see the module docstring."""
    if budget < 1:
        raise UserError(f"token_budget must be >= 1, got {budget}")
    sized = [(row, tokens.count(row["text"])) for row in rows]
    sized = [(row, n) for row, n in sized if n > 0]
    if not sized:
        raise UserError("cannot match a token budget: the corpus has no text")
    random.Random(f"{seed}:budget").shuffle(sized)
    out: list[dict[str, Any]] = []
    used, passes, cut = 0, 0, False
    while used < budget:
        passes += 1
        for row, n in sized:
            if used + n <= budget:
                out.append({**row, "tokens": n, "pass": passes})
                used += n
                continue
            text = tokens.head(row["text"], budget - used)
            if text:
                n_cut = tokens.count(text)
                out.append({**row, "text": text, "tokens": n_cut, "pass": passes, "cut_from_tokens": n})
                used += n_cut
                cut = True
            used = max(used, budget)  # a cut that decodes to nothing still ends the budget
            break
    return Matched(rows=out, budget=budget, tokens_added=sum(r["tokens"] for r in out), source_lines=len(sized),
                   source_tokens=sum(n for _, n in sized), passes=passes, cut_line=cut)
