"""Per-choice log-likelihoods from lm-eval's per-sample logs, and the multiple-choice metrics recomputed from them.

lm-eval 0.4.13 logs, for every document of a ``multiple_choice`` task, one ``(context, continuation)`` request
per choice (``arguments``), the model's answer to each (``filtered_resps``: ``[log-likelihood, is_greedy]``,
written with ``str()``, which round-trips a float exactly) and the gold (``target``: ``doc_to_target`` as
text). That is all its ``process_results`` reads, so the metrics recomputed here (:func:`item_scores`) follow it
step for step: ``acc`` takes the argmax of the log-likelihoods, ``acc_norm`` the argmax of the log-likelihood
divided by the choice's length in characters (``len``, not bytes: that is ``acc_bytes``), both with numpy's
first-maximum tie rule, and a list of golds counts a prediction in any of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import JsonValue

from icl_generalization.analysis.results import read_samples
from icl_generalization.analysis.results_schema import DEFAULT_FILTER
from icl_generalization.core.errors import DataError
from icl_generalization.data.records import iter_jsonl

# The content-free input that replaces the question (Zhao et al. 2021 use "N/A" among others).
CONTENT_FREE = "N/A"


@dataclass(frozen=True)
class ChoiceLog:
    """One logged document: its requests, the model's log-likelihood of each choice, and the gold."""

    key: str
    doc_id: int
    requests: tuple[tuple[str, str], ...]  # (context, continuation), one per choice
    loglikelihoods: tuple[float, ...]
    gold: tuple[int, ...]
    logged: Mapping[str, float]  # the per-item metrics lm-eval computed live
    doc: Mapping[str, JsonValue]
    line: Mapping[str, JsonValue]  # the whole logged line, for the gate-ready copy

    @property
    def form(self) -> str | None:
        form = self.doc.get("form")
        return form if isinstance(form, str) else None

    def content_free_context(self) -> str | None:
        """The prompt with its question replaced by :data:`CONTENT_FREE`, keeping any in-context documents before
        it; None when the document does not say which part of the prompt is the question (a foreign task)."""
        question = self.doc.get("prompt")
        contexts = {context for context, _ in self.requests}
        if not isinstance(question, str) or not question or len(contexts) != 1:
            return None
        (context,) = contexts
        return context[:-len(question)] + CONTENT_FREE if context.endswith(question) else None


def _number(value: object, where: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise DataError(f"{where}: log-likelihood {value!r} is not a number") from None
    if not np.isfinite(number) and number != -np.inf:
        raise DataError(f"{where}: log-likelihood {value!r} is not a log-likelihood")
    return number


def _requests(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    """lm-eval writes each request as ``{"gen_args_i": {"arg_0": context, "arg_1": continuation}}``."""
    items = raw.values() if isinstance(raw, dict) else raw if isinstance(raw, list) else None
    out = []
    for item in items or ():
        pair = [item.get("arg_0"), item.get("arg_1")] if isinstance(item, dict) else item
        if not (isinstance(pair, list) and len(pair) >= 2 and all(isinstance(p, str) for p in pair[:2])):
            raise DataError(f"{where}: 'arguments' is not a list of (context, continuation) requests")
        out.append((pair[0], pair[1]))
    if len(out) < 2:
        raise DataError(f"{where}: 'arguments' holds {len(out)} requests; a multiple-choice item has one per choice")
    return tuple(out)


def _loglikelihoods(raw: object, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or len(raw) != n:
        raise DataError(f"{where}: 'filtered_resps' does not hold one [log-likelihood, is_greedy] per choice ({n})")
    out = []
    for resp in raw:
        if not isinstance(resp, list | tuple) or not resp:
            raise DataError(f"{where}: 'filtered_resps' entry {resp!r} is not [log-likelihood, is_greedy]")
        out.append(_number(resp[0], where))
    return tuple(out)


def _gold(target: object, n: int, where: str) -> tuple[int, ...]:
    """lm-eval's gold: ``doc_to_target`` logged as text (``"[3, 5]"`` or ``"2"``), indices into the choices."""
    try:
        value = json.loads(str(target))
    except json.JSONDecodeError:
        value = None
    golds = value if isinstance(value, list) else [value]
    if not golds or not all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < n for g in golds):
        raise DataError(f"{where}: target {target!r} is not a gold index (or list of them) into {n} choices")
    return tuple(golds)


def read_choice_logs(path: Path) -> list[ChoiceLog]:
    """Every document of a samples file with what rescoring needs; the default filter's lines only."""
    keys = {s.doc_id: s.key for s in read_samples(path).values()}  # validates the lines the gate reads too
    logs = []
    for where, raw in iter_jsonl(path):
        if raw.get("filter", DEFAULT_FILTER) != DEFAULT_FILTER:
            continue
        requests = _requests(raw.get("arguments"), where)
        doc: dict[str, JsonValue] = raw["doc"] if isinstance(raw.get("doc"), dict) else {}
        metrics = raw.get("metrics") or []
        logs.append(ChoiceLog(
            key=keys[raw["doc_id"]], doc_id=raw["doc_id"], requests=requests,
            loglikelihoods=_loglikelihoods(raw.get("filtered_resps"), len(requests), where),
            gold=_gold(raw.get("target"), len(requests), where),
            logged={m: float(raw[m]) for m in metrics if isinstance(raw.get(m), int | float)}, doc=doc, line=raw))
    return logs


def choice_texts(log: ChoiceLog, target_delimiter: str) -> list[str]:
    """``doc_to_choice``'s texts: lm-eval built each continuation as ``target_delimiter + choice``."""
    return [cont[len(target_delimiter):] if cont.startswith(target_delimiter) else cont for _, cont in log.requests]


@dataclass(frozen=True)
class ItemScores:
    acc: float
    acc_norm: float
    acc_calibrated: float | None  # None: no content-free prior for this item


def _hit(scores: np.ndarray, gold: Sequence[int]) -> float:
    return 1.0 if int(np.argmax(scores)) in gold else 0.0


def item_scores(log: ChoiceLog, target_delimiter: str, prior: Sequence[float] | None = None) -> ItemScores:
    """lm-eval's ``acc`` and ``acc_norm`` for one item, and the calibrated accuracy when a prior is given:
    the argmax of ``loglik(choice | prompt) - loglik(choice | content-free prompt)``."""
    lls = np.array(log.loglikelihoods)
    lengths = np.array([float(len(c)) for c in choice_texts(log, target_delimiter)])
    calibrated = None
    if prior is not None:
        calibrated = _hit(lls - np.array(prior, dtype=float), log.gold)
    return ItemScores(_hit(lls, log.gold), _hit(lls / lengths, log.gold), calibrated)


def iter_forms(logs: Sequence[ChoiceLog]) -> Iterator[tuple[str, list[ChoiceLog]]]:
    """The logs grouped by their form, in sorted order; nothing when any item has no form."""
    if not logs or any(log.form is None for log in logs):
        return
    groups: dict[str, list[ChoiceLog]] = {}
    for log in logs:
        groups.setdefault(str(log.form), []).append(log)
    yield from sorted(groups.items())
