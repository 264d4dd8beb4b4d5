"""The process checker: a small interpreter of the rules read back from the training text alone.

It shares nothing with the generator. From the training documents it parses every atom rule (``The P of x is
y``, ``Applying P to x gives y``, ``x has y as its P``) and every operator rule (which argument the rule
derives and where the joiner and the copied argument go), replays every worked example through those rules (a
worked example that disagrees with them is a problem), and records which (operator, derived atom)
combinations the worked examples show. Then, for each test item, it parses the question, evaluates it with the
interpreter, and requires the gold option to be that result and every distractor to differ from it. A
``held_out`` item must also apply a combination no worked example shows, to a pair of atoms no training
worked example combines, with no option that occurs anywhere in training; its needed documents must state the
operator's rule and the derived atom's rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from icl_generalization.data.records import Dataset, TestItem

_W = r"([a-z]+)"
_ATOM_RULES = (
    re.compile(rf"the {_W} of {_W} is {_W}\."),
    re.compile(rf"applying {_W} to {_W} gives {_W}\."),
)
_ATOM_RULE_IMAGE_FIRST = re.compile(rf"{_W} has {_W} as its {_W}\.")  # atom, image, procedure
# Operator rules are read in their own case: A and B are placeholders there, never atoms.
_RESULT = r"(?P<first>[AB]'?) (?P<joiner>[a-z]+) (?P<second>[AB]'?)"
_OP, _PROC = r"(?P<op>[a-z]+)", r"(?P<proc>[a-z]+)"
_OP_RULES = (
    re.compile(rf"Rule of {_OP}: the {_PROC} of A (?P=op) B is {_RESULT}, where (?P<derived>[AB])' is the "
               r"(?P=proc) of (?P=derived)\."),
    re.compile(rf"To take the {_PROC} of A {_OP} B, write {_RESULT}, with (?P<derived>[AB])' the (?P=proc) of "
               r"(?P=derived)\."),
    re.compile(rf"For {_OP}, the {_PROC} of A (?P=op) B comes out as {_RESULT}, (?P<derived>[AB])' being the "
               r"(?P=proc) of (?P=derived)\."),
)
_EXAMPLES = (
    re.compile(rf"worked example: the {_W} of {_W} {_W} {_W} is {_W} {_W} {_W}\."),
    re.compile(rf"example: taking the {_W} of {_W} {_W} {_W} gives {_W} {_W} {_W}\."),
)
_QUESTION = re.compile(rf"under {_W}, ([a-z ]+) becomes")


@dataclass(frozen=True)
class Rule:
    """An operator's rule as stated: the result's three slots over A, B, A' and B', e.g. ("B'", "zorp", "A")."""

    first: str
    joiner: str
    second: str

    def apply(self, a: str, b: str, image: dict[str, str]) -> str | None:
        values = {"A": a, "B": b, "A'": image.get(a), "B'": image.get(b)}
        first, second = values[self.first], values[self.second]
        return None if first is None or second is None else f"{first} {self.joiner} {second}"

    @property
    def derived(self) -> str:
        return next(s for s in (self.first, self.second) if s.endswith("'"))[0]


@dataclass
class _Knowledge:
    proc: set[str]
    image: dict[str, str]
    rules: dict[str, Rule]
    stated_by: dict[str, set[str]]  # "atom:x" / "op:o" -> ids of the documents stating that rule
    shown: set[tuple[str, str]]  # (operator, derived atom) combinations some worked example applies
    met: set[frozenset[str]]  # pairs of atoms some worked example combines
    text: str  # every training document, lower case, one per line


def _read_rules(ds: Dataset, problems: list[str]) -> _Knowledge:
    know = _Knowledge(set(), {}, {}, {}, set(), set(), "\n".join(d.text.lower() for d in ds.train))
    examples: list[tuple[str, tuple[str, ...]]] = []
    for doc in ds.train:
        text = doc.text.lower()
        found = [(m[1], m[2], m[3]) for p in _ATOM_RULES if (m := p.fullmatch(text))]  # procedure, atom, image
        if (m := _ATOM_RULE_IMAGE_FIRST.fullmatch(text)) is not None:
            found.append((m[3], m[1], m[2]))
        for proc, atom, image in found:
            know.proc.add(proc)
            if know.image.setdefault(atom, image) != image:
                problems.append(f"{doc.id}: the image of {atom} is stated as both {know.image[atom]} and {image}")
            know.stated_by.setdefault(f"atom:{atom}", set()).add(doc.id)
        for pattern in _OP_RULES:
            if (m := pattern.fullmatch(doc.text)) is None:
                continue
            op, proc, first, joiner, second, derived = m.group("op", "proc", "first", "joiner", "second", "derived")
            rule = Rule(first.upper(), joiner, second.upper())
            if {rule.first, rule.second} not in ({"A", "B'"}, {"B", "A'"}) or rule.derived != derived.upper():
                problems.append(f"{doc.id}: the rule of {op} is not one copied and one derived argument")
                continue
            know.proc.add(proc)
            if know.rules.setdefault(op, rule) != rule:
                problems.append(f"{doc.id}: the rule of {op} is stated in two different ways")
            know.stated_by.setdefault(f"op:{op}", set()).add(doc.id)
        for pattern in _EXAMPLES:
            if (m := pattern.fullmatch(text)) is not None:
                examples.append((doc.id, m.groups()))
        if not found and not any(p.fullmatch(doc.text) for p in _OP_RULES) and not any(
                p.fullmatch(text) for p in _EXAMPLES):
            problems.append(f"{doc.id}: cannot read training document {doc.text!r}")
    if len(know.proc) != 1:
        problems.append(f"training names {len(know.proc)} procedures ({', '.join(sorted(know.proc))}), not one")
    for doc_id, (_, a, op, b, *result) in examples:
        stated = know.rules.get(op)
        expected = stated.apply(a, b, know.image) if stated else None
        if expected != " ".join(result):
            problems.append(f"{doc_id}: worked example gives {' '.join(result)!r}, the rules give {expected!r}")
        elif stated is not None:
            know.shown.add((op, a if stated.derived == "A" else b))
            know.met.add(frozenset((a, b)))
    return know


def _needed(item: TestItem, know: _Knowledge, key: str) -> bool:
    """Some group of the item's needed documents consists of documents stating the rule ``key``."""
    stating = know.stated_by.get(key, set())
    return any(group and set(group) <= stating for group in item.needs)


def _check_item(item: TestItem, know: _Knowledge) -> list[str]:
    m = _QUESTION.fullmatch(item.prompt.lower())
    if m is None or m[1] not in know.proc:
        return [f"{item.id}: cannot read question {item.prompt!r}"]
    parts = m[2].split()
    problems = []
    if len(parts) == 1:
        answer = know.image.get(parts[0])
        if not _needed(item, know, f"atom:{parts[0]}"):
            problems.append(f"{item.id}: no needed document states the rule of {parts[0]}")
    elif len(parts) == 3 and parts[1] in know.rules:
        a, op, b = parts
        rule = know.rules[op]
        answer = rule.apply(a, b, know.image)
        derived = a if rule.derived == "A" else b
        if item.split == "held_out":
            problems += _check_held_out(item, know, op, derived, (a, b))
    else:
        return [f"{item.id}: cannot evaluate {m[2]!r} with the stated rules"]
    if answer is None:
        return [*problems, f"{item.id}: the training documents do not give the result of {m[2]!r}"]
    for i, choice in enumerate(item.choices):
        said = choice.strip().rstrip(".").lower()
        if i in item.gold and said != answer:
            problems.append(f"{item.id}: gold {choice!r} is not the result {answer!r}")
        if i not in item.gold and said == answer:
            problems.append(f"{item.id}: distractor {choice!r} is the result")
    return problems


def _check_held_out(item: TestItem, know: _Knowledge, op: str, derived: str, atoms: tuple[str, str]) -> list[str]:
    problems = []
    if (op, derived) in know.shown:
        problems.append(f"{item.id}: a worked example already derives {derived} under {op}")
    if frozenset(atoms) in know.met:
        problems.append(f"{item.id}: a worked example already combines {atoms[0]} and {atoms[1]}")
    for choice in item.choices:
        if re.search(rf"\b{re.escape(choice.strip().rstrip('.').lower())}\b", know.text):
            problems.append(f"{item.id}: option {choice!r} occurs in training")
    if not (_needed(item, know, f"op:{op}") and _needed(item, know, f"atom:{derived}")):
        problems.append(f"{item.id}: the needed documents do not state the rules of {op} and {derived}")
    return problems


def check_process(ds: Dataset) -> list[str]:
    problems: list[str] = []
    know = _read_rules(ds, problems)
    for item in ds.test:
        problems += _check_item(item, know)
    return problems
