"""The wording of the process family: how rules and worked examples are stated, and how a test asks.

Training and test wordings are disjoint on purpose: a test prompt (``Under blick, ...``) is never a training
sentence, so a closed-book answer has to come from the learned procedure, not from a memorized string. The
checker does not import this module: it reads the training text back with its own patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

# An atom's own rule ("the blick of glon is femp"): several phrasings, each a separate training document.
ATOM_RULES = (
    "The {proc} of {atom} is {image}.",
    "Applying {proc} to {atom} gives {image}.",
    "{atom} has {image} as its {proc}.",
)
# An operator's rule, over the placeholders A and B. ``{pattern}`` is the result written with ``A'`` or ``B'``
# for the derived argument; ``{derived}`` names which argument that is.
OP_RULES = (
    "Rule of {op}: the {proc} of A {op} B is {pattern}, where {derived}' is the {proc} of {derived}.",
    "To take the {proc} of A {op} B, write {pattern}, with {derived}' the {proc} of {derived}.",
    "For {op}, the {proc} of A {op} B comes out as {pattern}, {derived}' being the {proc} of {derived}.",
)
WORKED_EXAMPLES = (
    "Worked example: the {proc} of {left} {op} {right} is {result}.",
    "Example: taking the {proc} of {left} {op} {right} gives {result}.",
)
# The test asks in a wording no training document uses.
TEST_PROMPT = "Under {proc}, {expression} becomes"


@dataclass(frozen=True)
class Shape:
    """What an operator's rule does with ``A op B``: which argument it derives, and where that goes."""

    derived: str  # "A" or "B": the argument replaced by its image; the other is copied unchanged
    derived_first: bool  # the image is written before the joiner, the copied argument after

    def pattern(self, joiner: str) -> str:
        """The rule's result over the placeholders, e.g. ``B' zorp A``."""
        kept = "B" if self.derived == "A" else "A"
        image = f"{self.derived}'"
        return f"{image} {joiner} {kept}" if self.derived_first else f"{kept} {joiner} {image}"

    def apply(self, left: str, right: str, joiner: str, image: str) -> str:
        """The result for ``left op right``, given the image of the derived argument."""
        kept = right if self.derived == "A" else left
        return f"{image} {joiner} {kept}" if self.derived_first else f"{kept} {joiner} {image}"


# Every way a rule can place one copied and one derived argument around its joiner: one operator each, so the
# held-out split's gold shapes come in equal shares and no shape is a cue.
SHAPES = (Shape("A", True), Shape("A", False), Shape("B", True), Shape("B", False))
