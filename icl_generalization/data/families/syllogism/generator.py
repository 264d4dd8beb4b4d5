"""Simple syllogisms over nonsense terms: the study's ``conclusion`` split and our ``balanced`` diagnostic.

Training item (one document each)::

    The relationships between glon, troff and yomp are: All glon are yomp. All troff are glon.

Test item (split ``conclusion``, one per study item): the prompt names the two end terms
(``The relationships between yomp and troff are:``) and the six statements ``{All, Some, No} x {both
directions}`` are scored. Gold is every statement that follows (rules in ``forms``). An ``All`` conclusion has
one gold statement, but ``Some`` and ``No`` read the same in both directions, so those items have two: chance
is 1/6 for Barbara-like items and 1/3 for the rest (0.316 over the default 69 items, recorded per task).

The ``conclusion`` split reproduces the study and is *not* a clean test of inference: on every valid form with
an All, No or Some conclusion the premises' dominant quantifier names the conclusion (the atmosphere heuristic
scores 0.95), and no choice of forms can change that. The ``balanced`` split (see ``balanced``) has its own
documents and is the family's inference test: three premises, a "nothing follows" option, and conclusion kinds
in shares at which every model-free guess scores chance.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from icl_generalization.data.clustering import interleave_by_cluster
from icl_generalization.data.families.syllogism import balanced
from icl_generalization.data.families.syllogism.forms import Form, follows, options, render, valid_forms
from icl_generalization.data.lexicon import make_words
from icl_generalization.data.records import Dataset, TestItem, TrainDoc

NAME = "syllogism"
# 1.2: the balanced split (three premises, "nothing follows", balanced conclusion kinds) and its documents.
GENERATOR_VERSION = "1.2"
SPLITS = ("conclusion", balanced.SPLIT)


@dataclass(frozen=True)
class SyllogismConfig:
    """Default: the study's 69 training items (and one test item each), plus 100 balanced items."""

    n_items: int = 69
    n_balanced: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.n_items <= 300:
            raise ValueError(f"n_items must be in 1..300, got {self.n_items}")
        # Multiples of 5: the conclusion kinds come in fifths (balanced.KINDS).
        if not 5 <= self.n_balanced <= 300 or self.n_balanced % 5:
            raise ValueError(f"n_balanced must be a multiple of 5 in 5..300, got {self.n_balanced}")


def premise_document(item: TestItem) -> str:
    """The fact an item tests: its premise document (the family's cluster key)."""
    return "|".join(sorted(d for group in item.needs for d in group))


def item_form(item: TestItem) -> str:
    """The item's form for per-form scores: the mood's name and the gold conclusion's quantifier on the study's
    split (``Darii (Some)``), the gold kind on the balanced split (``balanced: nothing``). The quantifier is what
    a model's prior over conclusions acts on, so a per-form table shows where that prior wins or loses."""
    if "form" in item.meta:
        quantifier = item.choices[item.gold[0]].split()[0]  # every gold of an item has the same quantifier
        return f"{item.meta['form']} ({quantifier})"
    return f"balanced: {item.meta['kind']}"


def _conclusion_item(i: int, form: Form, words: list[str], rng: random.Random) -> tuple[TrainDoc, TestItem]:
    s, m, p = words
    premises = (form.major, form.minor)
    names = {"S": s, "M": m, "P": p}
    # Premise order is varied; each premise keeps the direction its figure gives it.
    shown = list(premises)
    rng.shuffle(shown)
    listed = [s, m, p]
    rng.shuffle(listed)
    doc_id = f"item{i:03d}"
    text = (f"The relationships between {listed[0]}, {listed[1]} and {listed[2]} are: "
            + " ".join(render(st, names) for st in shown))
    ends = [s, p]
    rng.shuffle(ends)
    opts = options()
    rng.shuffle(opts)
    gold = tuple(j for j, c in enumerate(opts) if follows(premises, c))
    return TrainDoc(id=doc_id, text=text, entities=(s, m, p)), TestItem(
        id=f"conclusion-{i:03d}", split="conclusion", prompt=f"The relationships between {ends[0]} and {ends[1]} are:",
        choices=tuple(" " + render(c, names) for c in opts), gold=gold, needs=((doc_id,),), entities=(s, p, m),
        meta={"form": form.name})


def generate(config: SyllogismConfig, rng: random.Random, seed: int = 0) -> Dataset:
    forms = list(valid_forms())
    # Balanced: every form appears floor(n/k) or ceil(n/k) times; which forms get the extra item is random.
    order = list(range(len(forms)))
    rng.shuffle(order)
    plan = [order[i % len(forms)] for i in range(config.n_items)]
    rng.shuffle(plan)
    # Fresh words per item: shared terms between items would let one item's premises change another's.
    n_words = 3 * config.n_items + 4 * config.n_balanced
    words = make_words(n_words, rng, pool=NAME, max_shared_head=1 if n_words <= 270 else 4)
    pairs = [_conclusion_item(i, forms[k], words[3 * i: 3 * i + 3], rng) for i, k in enumerate(plan)]
    pairs += balanced.make_items(config.n_balanced, words[3 * config.n_items:], rng, first_doc=config.n_items)
    # Each item has its own document, so the interleaving keeps the order; it is here so that a --limit prefix
    # spans as many premise documents as possible whatever the items' shape becomes.
    test = interleave_by_cluster([item for _, item in pairs], premise_document)
    return Dataset(family=NAME, generator_version=GENERATOR_VERSION, seed=seed, config=asdict(config),
                   train=tuple(doc for doc, _ in pairs), test=tuple(test))
