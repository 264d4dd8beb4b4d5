"""The simple-reversal checker: the comparison stated in training must entail the gold reversal and contradict the
distractor, and the reversed statement itself must never appear in training (read from the text alone).
"""

from __future__ import annotations

import re

from icl_generalization.data.records import Dataset

Triple = tuple[str, str, str]  # (comparative, subject, object)
_COMPARISON = re.compile(r"([a-z]+) are (more|less) ([a-z]+) than ([a-z]+)")


def check_simple_reversal(ds: Dataset) -> list[str]:
    problems: list[str] = []
    stated: dict[str, set[Triple]] = {}
    for doc in ds.train:
        stated[doc.id] = {(f"{d} {f}", a, b) for a, d, f, b in _COMPARISON.findall(doc.text)}
    everything = set().union(*stated.values()) if stated else set()
    for item in ds.test:
        needed = set().union(*(set.intersection(*(stated[d] for d in group)) for group in item.needs))
        for i, choice in enumerate(item.choices):
            match = _COMPARISON.fullmatch((item.prompt + choice).rstrip("."))
            if match is None:
                problems.append(f"{item.id}: cannot read choice {choice!r}")
                continue
            a, direction, feature, b = match.groups()
            flipped = ("less" if direction == "more" else "more") + " " + feature
            entailed = (flipped, b, a) in needed or (f"{direction} {feature}", a, b) in needed
            contradicted = (f"{direction} {feature}", b, a) in needed or (flipped, a, b) in needed
            if (f"{direction} {feature}", a, b) in everything:
                problems.append(f"{item.id}: the tested statement itself is in training: {a} {direction} {b}")
            if i in item.gold and not entailed:
                problems.append(f"{item.id}: gold {choice!r} does not follow from the needed documents")
            if i not in item.gold and not contradicted:
                problems.append(f"{item.id}: distractor {choice!r} is not contradicted by training")
    return problems
