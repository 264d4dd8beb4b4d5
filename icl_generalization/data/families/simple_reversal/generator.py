"""Simple reversals: comparisons between nonsense entities, trained in one direction, tested reversed.

Training: ``N`` facts such as ``femp are more dangerous than glon.``, each stated in ``articles_per_fact``
one-sentence articles that open with a randomly drawn lead-in (``Did you know that ...``). Half of the facts
use ``more``, half ``less``, so always answering ``less`` scores chance.

Test split ``reversal``: one item per fact, no lead-in. The prompt is the second entity (``glon are``) and the
two continuations are the correct reversal (`` less dangerous than femp.``) and the contradiction
(`` more dangerous than femp.``): they differ only in the comparative, so nothing but the fact decides.
Every entity appears in exactly one fact, so no chain of facts implies anything else.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.lexicon import make_words
from icl_generalization.data.records import Dataset, TestItem, TrainDoc

NAME = "simple_reversal"
# 1.2: the gold sits first in exactly half the items, and in half of each trained direction (it was a coin flip
# per item: 56 / 44 in the default data).
GENERATOR_VERSION = "1.2"
SPLITS = ("reversal",)

# 28 features that take a clean "more X" / "less X" comparison (no irregular comparatives).
FEATURES = (
    "dangerous", "expensive", "colorful", "famous", "intelligent", "popular", "common", "valuable", "fragile",
    "flexible", "poisonous", "aggressive", "curious", "delicate", "durable", "elegant", "fertile", "nervous",
    "patient", "playful", "powerful", "precious", "generous", "graceful", "noisy", "reliable", "sensitive",
    "stubborn",
)
# Lead-ins of the training articles; the test prompt has none, so its wording is never a training sentence.
LEAD_INS = (
    "Did you know that {fact}?",
    "It is well known that {fact}.",
    "According to the field guide, {fact}.",
    "Researchers have confirmed that {fact}.",
    "Fun fact: {fact}.",
    "As every student learns, {fact}.",
    "Recent observations show that {fact}.",
    "Experts agree that {fact}.",
    "Here is something interesting: {fact}.",
    "Locals will tell you that {fact}.",
    "An old handbook notes that {fact}.",
    "Surprisingly, {fact}.",
    "In short, {fact}.",
    "Careful study has shown that {fact}.",
    "Most people are unaware that {fact}.",
    "The encyclopedia states that {fact}.",
)


@dataclass(frozen=True)
class SimpleReversalConfig:
    """Defaults are the study's: 100 facts x 10 articles = 1,000 training documents, 100 test items."""

    n_facts: int = 100
    articles_per_fact: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.n_facts <= 300:
            raise ValueError(f"n_facts must be in 1..300, got {self.n_facts}")
        if not 1 <= self.articles_per_fact <= len(LEAD_INS):
            raise ValueError(f"articles_per_fact must be in 1..{len(LEAD_INS)}, got {self.articles_per_fact}")


def pair_of(item: TestItem) -> str:
    """The compared pair an item tests (the family's cluster key)."""
    return "|".join(sorted(item.entities))


def statement(subject: str, direction: str, feature: str, other: str) -> str:
    """``subject are more|less feature than other`` (no final period)."""
    return f"{subject} are {direction} {feature} than {other}"


def generate(config: SimpleReversalConfig, rng: random.Random, seed: int = 0) -> Dataset:
    # Up to 300 facts need 600 words, more than one word per first syllable allows; the choices of one item
    # hold the same two words, so sharing a first syllable across facts cannot leak an answer.
    words = make_words(2 * config.n_facts, rng, pool=NAME, max_shared_head=1 if config.n_facts <= 100 else 3)
    # Features cycle so all 28 are used about equally; directions alternate, and within each direction the gold
    # goes first in every other fact, so neither a comparative nor a position (nor both) beats chance. Then
    # features and (direction, gold first) are shuffled.
    features = [FEATURES[i % len(FEATURES)] for i in range(config.n_facts)]
    layouts = [("more" if i % 2 == 0 else "less", i % 4 < 2) for i in range(config.n_facts)]
    rng.shuffle(features)
    rng.shuffle(layouts)
    train: list[TrainDoc] = []
    test: list[TestItem] = []
    for i in range(config.n_facts):
        a, b = words[2 * i], words[2 * i + 1]
        feature, (direction, gold_first) = features[i], layouts[i]
        fact = statement(a, direction, feature, b)
        doc_ids = []
        for j, lead in enumerate(rng.sample(LEAD_INS, config.articles_per_fact)):
            doc_id = f"fact{i:03d}-{j:02d}"
            text = lead.format(fact=fact)
            train.append(TrainDoc(id=doc_id, text=text[0].upper() + text[1:], entities=(a, b)))
            doc_ids.append(doc_id)
        reverse = "less" if direction == "more" else "more"
        correct, wrong = f" {reverse} {feature} than {a}.", f" {direction} {feature} than {a}."
        choices = [correct, wrong] if gold_first else [wrong, correct]
        test.append(TestItem(
            id=f"reversal-{i:03d}", split="reversal", prompt=f"{b} are", choices=tuple(choices),
            gold=(choices.index(correct),), needs=(tuple(doc_ids),), entities=(b, a),
            meta={"feature": feature, "trained_direction": direction},
        ))
    # One item per pair today, so this keeps the order; it is what keeps any `--limit` prefix spread over as many
    # facts as it can should a fact ever get more than one question.
    return Dataset(family=NAME, generator_version=GENERATOR_VERSION, seed=seed, config=asdict(config),
                   train=tuple(train), test=tuple(interleave_by_cluster(test, pair_of)))
