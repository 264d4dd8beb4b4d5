"""The reversal curse (Berglund et al. 2023): fictional people described in one direction only.

Sets of people:

- ``p2d`` ("set A" in the study): training states name before description only;
- ``d2p``: training states description before name only;
- ``both``: training states each person in both orders, as separate documents.

Test splits (all with held-out phrasings):

- ``p2d_reverse``: the description of a p2d person, then the 4 candidate names (the study's test);
- ``p2d``: the name of a p2d person, then 4 candidate descriptions (same direction: was the fact learned?);
- ``d2p``: description, then names, for d2p people (same direction);
- ``d2p_reverse``: name, then descriptions, for d2p people.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import asdict, dataclass

from icl_generalization.data.families.reversal_curse import text
from icl_generalization.data.records import Dataset, TestItem, TrainDoc

NAME = "reversal_curse"
GENERATOR_VERSION = "1.0"
SPLITS = ("p2d_reverse", "p2d", "d2p", "d2p_reverse")
SETS = ("p2d", "d2p", "both")


@dataclass(frozen=True)
class ReversalCurseConfig:
    """Defaults reproduce the study's shape: 3,600 training documents, 300 reverse test prompts."""

    people_per_set: int = 30
    train_templates: int = 30
    test_templates: int = 10
    n_choices: int = 4

    def __post_init__(self) -> None:
        max_people = min(len(text.FIRST_NAMES) * len(text.LAST_NAMES), len(text.TITLE_ADJECTIVES)
                         * len(text.TITLE_NOUNS)) // len(SETS)
        if not 1 <= self.people_per_set <= max_people:
            raise ValueError(f"people_per_set must be in 1..{max_people}, got {self.people_per_set}")
        if not 1 <= self.train_templates <= min(len(text.P2D_TRAIN), len(text.D2P_TRAIN)):
            raise ValueError(f"train_templates must be in 1..{len(text.P2D_TRAIN)}, got {self.train_templates}")
        if not 1 <= self.test_templates <= min(len(text.P2D_TEST), len(text.D2P_TEST)):
            raise ValueError(f"test_templates must be in 1..{len(text.P2D_TEST)}, got {self.test_templates}")
        if not 2 <= self.n_choices <= self.people_per_set:
            raise ValueError(f"n_choices must be in 2..people_per_set ({self.people_per_set}), got {self.n_choices}")


@dataclass(frozen=True)
class Person:
    name: str
    description: str
    group: str  # one of SETS


def _fill(template: str, person: Person) -> str:
    description = person.description
    out = template.replace("<Description>", description[0].upper() + description[1:])
    return out.replace("<description>", description).replace("<name>", person.name)


def _split_at_end(template: str, slot: str, person: Person) -> tuple[str, str]:
    """A test template ends with ``slot``: return (prompt, continuation with its leading space)."""
    assert template.endswith(slot), template
    prompt = _fill(template[: -len(slot)].rstrip(), person)
    value = person.name if slot == "<name>" else person.description
    return prompt, " " + value


def _people(config: ReversalCurseConfig, rng: random.Random) -> list[Person]:
    n = config.people_per_set * len(SETS)
    names = [f"{first} {last}" for first in text.FIRST_NAMES for last in text.LAST_NAMES]
    rng.shuffle(names)
    # One first name and one last name per person keeps the four candidate names of a question
    # from sharing a token prefix that would give the answer away.
    chosen: list[str] = []
    used_first: set[str] = set()
    used_last: set[str] = set()
    for name in names:
        first, last = name.split(" ")
        if first in used_first or last in used_last:
            continue
        chosen.append(name)
        used_first.add(first)
        used_last.add(last)
        if len(chosen) == n:
            break
    if len(chosen) < n:  # more people than distinct first names: allow reuse of first names
        rest = [x for x in names if x not in chosen]
        chosen += rest[: n - len(chosen)]
    titles = [f"{a} {b}" for a in text.TITLE_ADJECTIVES for b in text.TITLE_NOUNS]
    rng.shuffle(titles)
    people = []
    for i, name in enumerate(chosen):
        role, kind = text.ROLES[i % len(text.ROLES)]
        description = f'{role} {kind} "{titles[i]}"'
        people.append(Person(name=name, description=description, group=SETS[i % len(SETS)]))
    return people


def draw_choices(correct: str, pool: list[str], n: int, rng: random.Random) -> tuple[tuple[str, ...], tuple[int, ...]]:
    others = rng.sample([x for x in pool if x != correct], n - 1)
    options = [correct, *others]
    rng.shuffle(options)
    return tuple(options), (options.index(correct),)


def generate(config: ReversalCurseConfig, rng: random.Random, seed: int = 0) -> Dataset:
    people = _people(config, rng)
    by_group = {g: [p for p in people if p.group == g] for g in SETS}
    p2d_templates = text.P2D_TRAIN[: config.train_templates]
    d2p_templates = text.D2P_TRAIN[: config.train_templates]
    train: list[TrainDoc] = []
    docs_of: dict[str, list[str]] = defaultdict(list)
    for group in SETS:
        for pi, person in enumerate(by_group[group]):
            directions = {"p2d": [p2d_templates], "d2p": [d2p_templates], "both": [p2d_templates, d2p_templates]}
            for di, templates in enumerate(directions[group]):
                for ti, template in enumerate(templates):
                    doc_id = f"{group}-{pi:03d}-{di}-{ti:02d}"
                    train.append(TrainDoc(id=doc_id, text=_fill(template, person), entities=(person.name,)))
                    docs_of[person.name].append(doc_id)
    test = _test_items(by_group, docs_of, config, rng,
                       text.P2D_TEST[: config.test_templates], text.D2P_TEST[: config.test_templates])
    return Dataset(family=NAME, generator_version=GENERATOR_VERSION, seed=seed, config=asdict(config),
                   train=tuple(train), test=tuple(test))


def _test_items(by_group: dict[str, list[Person]], docs_of: dict[str, list[str]], config: ReversalCurseConfig,
                rng: random.Random, p2d_tests: tuple[str, ...], d2p_tests: tuple[str, ...]) -> list[TestItem]:
    items = []
    # (split, people, templates, slot scored): reverse splits ask in the direction training never showed.
    plan = (
        ("p2d_reverse", "p2d", d2p_tests, "<name>"),
        ("p2d", "p2d", p2d_tests, "<description>"),
        ("d2p", "d2p", d2p_tests, "<name>"),
        ("d2p_reverse", "d2p", p2d_tests, "<description>"),
    )
    for split, group, templates, slot in plan:
        people = by_group[group]
        pool = [p.name if slot == "<name>" else p.description for p in people]
        for pi, person in enumerate(people):
            for ti, template in enumerate(templates):
                prompt, answer = _split_at_end(template, slot, person)
                options, gold = draw_choices(answer.strip(), pool, config.n_choices, rng)
                items.append(TestItem(
                    id=f"{split}-{pi:03d}-{ti:02d}", split=split, prompt=prompt,
                    choices=tuple(" " + o for o in options), gold=gold,
                    needs=(tuple(docs_of[person.name]),), entities=(person.name,),
                    meta={"template": ti},
                ))
    return items
