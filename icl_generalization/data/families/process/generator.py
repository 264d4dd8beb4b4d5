"""Process knowledge: a pseudo-derivative over nonsense symbols, with rule combinations held out for testing.

The procedure (its name is a nonsense word, say ``blick``) maps expressions to expressions, as a derivative
maps functions to functions, but by rules no model has met before:

- **atom rules**: every atom has an image (``The blick of glon is femp.``). The images close the atoms into one
  cycle, so every atom is also the image of exactly one other: reading a rule backwards names a real atom too.
- **operator rules**: an expression ``A op B`` has one of four operators; each rule copies one argument, replaces
  the other by its image and joins the two with the operator's own joiner word, in a fixed order
  (``Rule of dov: the blick of A dov B is B' zorp A, where B' is the blick of B.``). The four operators take
  the four possible shapes, one each.
- **worked examples** apply an operator rule and an atom rule together
  (``Worked example: the blick of trusk dov glon is femp zorp trusk.``).

Every (operator, atom) combination is either *shown* (worked examples derive the atom under that operator) or
*held out*: each atom is held out under exactly one operator, chosen so each operator holds out a quarter of
the atoms, and a held-out atom never appears in that operator's worked examples at all.

Test splits (the prompt's wording, ``Under blick, ... becomes``, is never a training sentence):

- ``rule`` (direct): one atom rule, ``Under blick, glon becomes`` -> `` femp.``; the distractors are the atom's
  other neighbours on the cycle (its preimage, the image's image, the preimage's preimage).
- ``held_out`` (inference): an operator applied to an atom under the one operator it was held out from, with
  a partner it never met in training. The eight options are every way of applying a plausible wrong rule
  combination to the same two atoms: copy either argument, derive the other forwards or backwards (the atom
  rule read the wrong way round), image before or after the copied argument, always with the operator's
  joiner. So every option holds the same number of words, letters (atoms all have five), question words and
  words shared with the other options; each option is as close to the question's atoms in the training text
  as any other (both atoms' images and preimages appear); no option ever occurs in training; and the gold
  shapes come in equal shares. Only applying the two rules together picks the gold.

Sizes (defaults): 40 atoms, each rule stated in 2 wordings, 2 worked examples per shown combination (240), so
328 training documents; 40 ``rule`` items and 80 ``held_out`` items (2 partners per held-out combination).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from icl_generalization.core.errors import UserError
from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.families.process.text import (
    ATOM_RULES,
    OP_RULES,
    SHAPES,
    TEST_PROMPT,
    WORKED_EXAMPLES,
    Shape,
)
from icl_generalization.data.lexicon import make_words
from icl_generalization.data.records import Dataset, TestItem, TrainDoc

NAME = "process"
GENERATOR_VERSION = "1.0"
SPLITS = ("rule", "held_out")
ATOM_LETTERS = 5  # atoms all have this many letters, so no option is longer than another


@dataclass(frozen=True)
class ProcessConfig:
    """Defaults: 40 atoms, 2 wordings per rule, 2 worked examples per shown combination, 2 items per held-out one."""

    n_atoms: int = 40
    phrasings: int = 2
    examples_per_combination: int = 2
    items_per_combination: int = 2

    def __post_init__(self) -> None:
        # A multiple of the four operators, so each holds out the same number of atoms (equal gold shapes).
        # 16 at least: a pair must be five steps apart on the cycle and fresh, which a dozen atoms cannot supply.
        if not 16 <= self.n_atoms <= 120 or self.n_atoms % len(SHAPES):
            raise ValueError(f"n_atoms must be a multiple of {len(SHAPES)} in 16..120, got {self.n_atoms}")
        if not 1 <= self.phrasings <= len(ATOM_RULES):
            raise ValueError(f"phrasings must be in 1..{len(ATOM_RULES)}, got {self.phrasings}")
        if not 1 <= self.examples_per_combination <= 4:
            raise ValueError(f"examples_per_combination must be in 1..4, got {self.examples_per_combination}")
        if not 1 <= self.items_per_combination <= 3:
            raise ValueError(f"items_per_combination must be in 1..3, got {self.items_per_combination}")


def needed_documents(item: TestItem) -> str:
    """The rules an item tests, as the ids of the documents stating them (the family's cluster key)."""
    return "|".join(sorted(d for group in item.needs for d in group))


@dataclass(frozen=True)
class _Lexicon:
    proc: str
    atoms: tuple[str, ...]  # in cycle order: the image of atoms[i] is atoms[i + 1]
    ops: tuple[str, ...]  # ops[k] has SHAPES[k]
    joiners: tuple[str, ...]  # joiners[k] is the joiner of ops[k]

    def image(self, atom: str, step: int = 1) -> str:
        return self.atoms[(self.atoms.index(atom) + step) % len(self.atoms)]

    def near(self, a: str, b: str) -> bool:
        """``a`` and ``b`` are at most two steps apart on the cycle: then an image or preimage of one would be the
        other or the other's own image, and the options would no longer be six distinct atoms in one pattern."""
        return b in (a, *(self.image(a, step) for step in (1, -1, 2, -2)))


def _lexicon(n_atoms: int, rng: random.Random) -> _Lexicon:
    n_other = 1 + 2 * len(SHAPES)
    # About half the drawn words have five letters; draw enough for the atoms and keep the rest for the others.
    n_words = 3 * n_atoms + n_other
    words = make_words(n_words, rng, pool=NAME, max_shared_head=1 if n_words <= 270 else 2)
    five = [w for w in words if len(w) == ATOM_LETTERS]
    if len(five) < n_atoms:
        raise ValueError(f"drew only {len(five)} five-letter words for {n_atoms} atoms")
    atoms = five[:n_atoms]
    other = [w for w in words if w not in atoms][:n_other]
    rng.shuffle(atoms)
    return _Lexicon(proc=other[0], atoms=tuple(atoms), ops=tuple(other[1:1 + len(SHAPES)]),
                    joiners=tuple(other[1 + len(SHAPES):]))


def _choice(text: str) -> str:
    return f" {text}."


def _expression(shape: Shape, derived: str, kept: str, op: str) -> tuple[str, str, str]:
    """``(left, op, right)`` with the derived atom in the argument the rule derives."""
    return (derived, op, kept) if shape.derived == "A" else (kept, op, derived)


def _held_out_options(lex: _Lexicon, k: int, derived: str, kept: str) -> tuple[str, list[str]]:
    """The gold result and all eight wrong-or-right rule combinations over the two atoms (gold among them)."""
    shape, joiner = SHAPES[k], lex.joiners[k]
    gold = shape.apply(*_ordered(shape, derived, kept), joiner, lex.image(derived))
    options = []
    for copied, other in ((kept, derived), (derived, kept)):
        for step in (1, -1):
            for first in (True, False):
                image = lex.image(other, step)
                options.append(f"{image} {joiner} {copied}" if first else f"{copied} {joiner} {image}")
    return gold, options


def _ordered(shape: Shape, derived: str, kept: str) -> tuple[str, str]:
    left, _, right = _expression(shape, derived, kept, "")
    return left, right


def _balanced_positions(n_items: int, n_choices: int, rng: random.Random) -> list[int]:
    """Gold positions in equal shares (up to one), in random order: no position is a cue."""
    positions = [i % n_choices for i in range(n_items)]
    rng.shuffle(positions)
    return positions


def _place(gold: str, options: Sequence[str], position: int, rng: random.Random) -> tuple[tuple[str, ...], int]:
    others = [o for o in options if o != gold]
    rng.shuffle(others)
    others.insert(position, gold)
    return tuple(_choice(o) for o in others), position


def generate(config: ProcessConfig, rng: random.Random, seed: int = 0) -> Dataset:
    lex = _lexicon(config.n_atoms, rng)
    n_ops = len(SHAPES)
    held = [i % n_ops for i in range(config.n_atoms)]
    rng.shuffle(held)
    held_op = dict(zip(lex.atoms, held, strict=True))

    train: list[TrainDoc] = []
    atom_docs: dict[str, tuple[str, ...]] = {}
    for i, atom in enumerate(lex.atoms):
        ids = []
        for j, template in enumerate(rng.sample(ATOM_RULES, config.phrasings)):
            text = template.format(proc=lex.proc, atom=atom, image=lex.image(atom))
            ids.append(f"atom{i:03d}-{j}")
            train.append(TrainDoc(id=ids[-1], text=text[0].upper() + text[1:],
                                  entities=(atom, lex.image(atom), lex.proc)))
        atom_docs[atom] = tuple(ids)
    op_docs: dict[int, tuple[str, ...]] = {}
    for k, (op, joiner, shape) in enumerate(zip(lex.ops, lex.joiners, SHAPES, strict=True)):
        ids = []
        for j, template in enumerate(rng.sample(OP_RULES, config.phrasings)):
            ids.append(f"op{k}-{j}")
            train.append(TrainDoc(id=ids[-1], text=template.format(
                op=op, proc=lex.proc, pattern=shape.pattern(joiner), derived=shape.derived),
                entities=(op, joiner, lex.proc)))
        op_docs[k] = tuple(ids)

    # Held-out items first: their partners are drawn so that no two items share a pair of atoms or an option;
    # the worked examples are then drawn around them.
    tested_pairs: set[frozenset[str]] = set()
    option_phrases: set[str] = set()
    rule_positions = _balanced_positions(config.n_atoms, 4, rng)
    held_positions = _balanced_positions(config.n_atoms * config.items_per_combination, 8, rng)
    rule_items: list[TestItem] = []
    held_items: list[TestItem] = []
    for i, atom in enumerate(lex.atoms):
        near = [lex.image(atom, s) for s in (1, -1, 2, -2)]
        choices, gold = _place(near[0], near, rule_positions[i], rng)
        rule_items.append(TestItem(
            id=f"rule-{i:03d}", split="rule", prompt=TEST_PROMPT.format(proc=lex.proc, expression=atom),
            choices=choices, gold=(gold,), needs=(atom_docs[atom],), entities=(atom,), meta={"rule": "atom"}))
        k = held_op[atom]
        for j in range(config.items_per_combination):
            partner, gold_text, options = _held_out_partner(lex, k, atom, tested_pairs, option_phrases, rng)
            tested_pairs.add(frozenset((atom, partner)))
            option_phrases.update(options)
            left, op, right = _expression(SHAPES[k], atom, partner, lex.ops[k])
            choices, gold = _place(gold_text, options, held_positions[len(held_items)], rng)
            held_items.append(TestItem(
                id=f"held_out-{i:03d}-{j}", split="held_out",
                prompt=TEST_PROMPT.format(proc=lex.proc, expression=f"{left} {op} {right}"), choices=choices,
                gold=(gold,), needs=(op_docs[k], atom_docs[atom]), entities=(left, right, op),
                meta={"operator": op, "derived": atom, "shape": SHAPES[k].pattern(lex.joiners[k])}))

    for k, (op, shape) in enumerate(zip(lex.ops, SHAPES, strict=True)):
        shown = [a for a in lex.atoms if held_op[a] != k]
        for derived in shown:
            partners: set[frozenset[str]] = set()
            for j in range(config.examples_per_combination):
                kept, result = _worked_partner(lex, k, derived, shown, tested_pairs | partners, option_phrases, rng)
                partners.add(frozenset((derived, kept)))
                left, _, right = _expression(shape, derived, kept, op)
                text = rng.choice(WORKED_EXAMPLES).format(proc=lex.proc, left=left, op=op, right=right, result=result)
                train.append(TrainDoc(id=f"ex{k}-{lex.atoms.index(derived):03d}-{j}", text=text,
                                      entities=tuple(dict.fromkeys((left, right, op, *result.split(), lex.proc)))))
    rng.shuffle(train)
    test = interleave_by_cluster([*rule_items, *held_items], needed_documents)
    return Dataset(family=NAME, generator_version=GENERATOR_VERSION, seed=seed, config=asdict(config),
                   train=tuple(train), test=tuple(test))


def _held_out_partner(lex: _Lexicon, k: int, derived: str, tested: set[frozenset[str]], taken: set[str],
                      rng: random.Random) -> tuple[str, str, list[str]]:
    """A partner for ``derived`` never paired with it before, whose options no other item has."""
    fits = []
    for kept in lex.atoms:
        if not lex.near(derived, kept) and frozenset((derived, kept)) not in tested:
            gold, options = _held_out_options(lex, k, derived, kept)
            if not taken.intersection(options):
                fits.append((kept, gold, options))
    if not fits:
        raise UserError(f"process: no fresh partner left for {derived!r}: use more atoms or fewer "
                        "items_per_combination")
    return rng.choice(fits)


def _worked_partner(lex: _Lexicon, k: int, derived: str, shown: Sequence[str], avoid: set[frozenset[str]],
                    option_phrases: set[str], rng: random.Random) -> tuple[str, str]:
    """A partner for a worked example: shown under this operator, no tested pair, not used with ``derived`` yet,
    and a result that is no test item's option (a distractor seen in training would be a cue by its frequency)."""
    shape, joiner = SHAPES[k], lex.joiners[k]
    fits = []
    for kept in shown:
        if not lex.near(derived, kept) and frozenset((derived, kept)) not in avoid:
            result = shape.apply(*_ordered(shape, derived, kept), joiner, lex.image(derived))
            if result not in option_phrases:
                fits.append((kept, result))
    if not fits:
        raise UserError(f"process: no worked-example partner left for {derived!r}: use more atoms or fewer examples")
    return rng.choice(fits)
