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

Only knowing the fact may pick the answer (the shortcut audit, ``icl-gen check-data --shortcuts``, checks it):
every first and last name occurs once; the three other options are people of the asked person's option
group, each offered as often as any other; the gold's position is balanced exactly; an in-context prompt holds a
document about every option; and questions are interleaved by person, so a ``--limit`` prefix (or a sweep's
first questions) spans as many people as it can.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.families.reversal_curse import text
from icl_generalization.data.records import Dataset, TestItem, TrainDoc

NAME = "reversal_curse"
# 1.1: unique first and last names per dataset; options drawn within fixed option groups (see ``_option_groups``)
# with exactly balanced gold positions; every option's person in ``needs``; items interleaved by person.
GENERATOR_VERSION = "1.1"
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
        max_people = min(len(text.FIRST_NAMES), len(text.LAST_NAMES), len(text.TITLE_ADJECTIVES)
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
    option_group: int  # the options of this person's questions are drawn from their option group only


def person_of(item: TestItem) -> str:
    """The person an item asks about (the family's cluster key: all questions about one person stand or fall
    together)."""
    return item.entities[0]


def _fill(template: str, person: Person) -> str:
    description = person.description
    out = template.replace("<Description>", description[0].upper() + description[1:])
    return out.replace("<description>", description).replace("<name>", person.name)


def _prompt(template: str, slot: str, person: Person) -> str:
    """A test template ends with ``slot`` (the scored part): the prompt is the template up to it, filled in."""
    assert template.endswith(slot), template
    return _fill(template[: -len(slot)].rstrip(), person)


def _option_groups(n_people: int, n_choices: int) -> list[range]:
    """One set's people (by index) cut into option groups of at least ``n_choices + 1`` (or the whole set).

    Groups are disjoint, and every question about a member offers only members of its group, each member as
    often as any other (see ``_options``). So the number of times an option occurs in a split, or in any part
    of a split made of whole groups (a sweep's first questions, a shard of questions that share evidence),
    says nothing about which option is right.
    """
    k = max(1, n_people // (n_choices + 1))
    return [range(j * n_people // k, (j + 1) * n_people // k) for j in range(k)]


def _people(config: ReversalCurseConfig, rng: random.Random) -> list[Person]:
    n = config.people_per_set * len(SETS)
    # Each first and each last name once: no two options of a question share a name part (or its tokens).
    names = [f"{first} {last}" for first, last in zip(rng.sample(text.FIRST_NAMES, n),
                                                      rng.sample(text.LAST_NAMES, n), strict=True)]
    titles = [(a, b) for a in text.TITLE_ADJECTIVES for b in text.TITLE_NOUNS]
    rng.shuffle(titles)
    people = []
    for s, group in enumerate(SETS):
        for g, members in enumerate(_option_groups(config.people_per_set, config.n_choices)):
            # Within an option group the roles differ and no title word repeats, so the descriptions offered
            # together share only "the" and "of" (text.ROLES) and no option stands out by its words.
            roles = rng.sample(text.ROLES, len(text.ROLES))
            used: set[str] = set()
            for j, i in enumerate(members):
                title = next((t for t in titles if not used & set(t)), titles[0])
                titles.remove(title)
                used |= set(title)
                role, kind = roles[j % len(roles)]
                people.append(Person(name=names[s * config.people_per_set + i],
                                     description=f'{role} {kind} "{title[0]} {title[1]}"', group=group,
                                     option_group=g))
    return people


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


def gold_positions(n_people: int, n_templates: int, n_choices: int, rng: random.Random) -> list[list[int]]:
    """Per person, per template, the gold's position: ``(template + offset) % n_choices``.

    Each person's positions, and each template's, differ in count by at most one. The offsets that get one
    person more than the others are spread evenly (Bresenham), which makes every position's total over the split
    equal whenever a cyclic layout can (the default: 75 of 300 each), so no position baseline beats chance.
    """
    base, extra = divmod(n_people, n_choices)
    offsets = [o for o in range(n_choices)
               for _ in range(base + (o + 1) * extra // n_choices - o * extra // n_choices)]
    rng.shuffle(offsets)
    return [[(t + offset) % n_choices for t in range(n_templates)] for offset in offsets]


def _options(members: Sequence[Person], n_templates: int, n_choices: int,
             rng: random.Random) -> dict[tuple[str, int], list[Person]]:
    """For each (member, template) of one option group: the member and ``n_choices - 1`` others of the group.

    Per template the group is seated around a random circle and each member is offered with the next
    ``n_choices - 1``: every member then occurs in exactly ``n_choices`` of the group's questions of that
    template, once as the answer, so option counts are equal in every union of (group, template) blocks.
    """
    offered = {}
    for t in range(n_templates):
        circle = rng.sample(list(members), len(members))
        for j, person in enumerate(circle):
            offered[person.name, t] = [circle[(j + k) % len(circle)] for k in range(n_choices)]
    return offered


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
        offered: dict[tuple[str, int], list[Person]] = {}
        for g in sorted({p.option_group for p in people}):
            offered |= _options([p for p in people if p.option_group == g], len(templates), config.n_choices, rng)
        positions = gold_positions(len(people), len(templates), config.n_choices, rng)
        split_items = []
        for pi, person in enumerate(people):
            for ti, template in enumerate(templates):
                others = offered[person.name, ti][1:]
                rng.shuffle(others)
                gold = positions[pi][ti]
                options = [*others[:gold], person, *others[gold:]]
                split_items.append(TestItem(
                    id=f"{split}-{pi:03d}-{ti:02d}", split=split, prompt=_prompt(template, slot, person),
                    choices=tuple(" " + (o.name if slot == "<name>" else o.description) for o in options),
                    gold=(gold,),
                    # The asked person's documents first, then each distractor's: an in-context prompt holds every
                    # option's fact, so whether an option is mentioned in context does not give the answer away.
                    needs=(tuple(docs_of[person.name]), *(tuple(docs_of[o.name]) for o in others)),
                    entities=(person.name,), meta={"template": ti},
                ))
        # People are listed group by group, so every round of the interleaving covers whole option groups first.
        items += interleave_by_cluster(split_items, person_of)
    return items
