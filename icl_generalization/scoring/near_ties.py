"""Which multiple-choice questions a half-precision rounding difference could flip.

In bf16 or fp16 the cached path adds the same terms as stock scoring in another order (chunked prefill, another
attention kernel, packed rows), so each log-likelihood differs from stock's by rounding: on the default model in
bf16, 0.031 nats per scored token at the 95th percentile and 0.078 at most (docs/performance.md). Where a
question's best choice leads the others by more than both could move, the two paths choose the same answer;
where it does not, only stock scoring gives stock's answer. ``near_tie_requests`` finds those questions so the
cached model class can score them the stock way.

A question is the set of requests lm-eval made from one document of one task (one per choice; in a
multiple-input task such as Winogrande, one per context). Requests from no document (the content-free priors,
``loglikelihood_rolling``) and lone requests are not questions. The context alone would not do: items of a
closed-book task often share a prompt, and a clear leader in one would hide a near tie in another.

With a bound of ``nats_per_token`` x the choice's scored tokens on each log-likelihood, choice j could overtake
the leader b when ``s_b - s_j <= bound_b + bound_j``. The same test on log-likelihoods divided by each choice's
length covers the length-normalised accuracies (``acc_norm`` in characters, ``acc_bytes`` in bytes). Not
covered: ``acc_mutual_info`` (its unconditional requests are scored like the others) and ``exact_match`` on
greedy flags."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

# HFLM's request triple: ((context, continuation) strings or None, context tokens, continuation tokens).
Request = tuple[Any, list[int], list[int]]


def _could_flip(scores: Sequence[float], bounds: Sequence[float]) -> bool:
    best = max(range(len(scores)), key=scores.__getitem__)
    return any(scores[best] - scores[j] <= bounds[best] + bounds[j] for j in range(len(scores)) if j != best)


def _lengths(request: Request) -> tuple[int, ...]:
    """The lengths lm-eval may divide a choice's log-likelihood by: ``acc_norm`` takes the choice's characters
    (without the space that joins it to the question, which the request's continuation carries), ``acc_bytes``
    its UTF-8 bytes; a request without text has its token count."""
    strings = request[0]
    if isinstance(strings, tuple) and len(strings) == 2 and isinstance(strings[1], str) and strings[1]:
        text = strings[1]
        return tuple(max(1, n) for n in (len(text), len(text.lstrip()), len(text.encode("utf-8")),
                                         len(text.lstrip().encode("utf-8"))))
    return (max(1, len(request[2])),)


def near_tie_requests(requests: Sequence[Request], questions: Sequence[Hashable | None], scores: Sequence[float],
                      nats_per_token: float) -> list[int]:
    """Indices (sorted) of every request of every question whose answer, raw or length-normalised, could change
    if each log-likelihood moved by up to ``nats_per_token`` per scored token. ``questions[i]`` names request i's
    question (lm-eval's task and document), or is ``None`` for a request that belongs to none."""
    if nats_per_token <= 0:
        return []
    members_of: dict[Hashable, list[int]] = defaultdict(list)
    for i, question in enumerate(questions):
        if question is not None:
            members_of[question].append(i)
    flagged: list[int] = []
    for members in members_of.values():
        if len(members) < 2:
            continue
        values = [scores[i] for i in members]
        bounds = [nats_per_token * len(requests[i][2]) for i in members]
        if _could_flip(values, bounds):
            flagged.extend(members)
            continue
        per_member = [_lengths(requests[i]) for i in members]
        for k in range(min(len(n) for n in per_member)):
            lengths = [n[k] for n in per_member]
            if _could_flip([v / n for v, n in zip(values, lengths, strict=True)],
                           [b / n for b, n in zip(bounds, lengths, strict=True)]):
                flagged.extend(members)
                break
    return sorted(flagged)


__all__ = ["near_tie_requests"]
