"""Sentence templates of the semantic-structure family.

``{x}`` is the subject (a category's nonsense word), ``{y}`` the object (a category or an attribute's nonsense
word). Training templates and test templates are disjoint, and no test template's fixed wording (``are
classified as``, ``include``, ``tend to be``...) occurs in any training document: a test in
``tests/test_semantic.py`` proves it. Every template is exported in ``graph.json`` so that the checker can read
facts back out of the documents without the generator's help.

Nonsense words stay lowercase even at the start of a sentence, as in the study's examples (``femp are ...``):
a capitalised variant would be a different token sequence, and the tests score the lowercase one.
"""

from __future__ import annotations

# Training statements, several phrasings per relation; a document draws one at random for each fact.
TRAIN = {
    "isa": ("{x} are a type of {y}.", "{x} are a kind of {y}.", "{x} belong to the group of {y}.",
            "{x} are one sort of {y}."),
    "property": ("{x} are {y}.", "{x} are usually {y}.", "{x} are known to be {y}."),
    "ability": ("{x} can {y}.", "{x} are able to {y}.", "{x} know how to {y}."),
    "part": ("{x} have {y}.", "{x} possess {y}.", "{x} come with {y}."),
}

# Test prompts: the prompt is the template up to ``{y}`` (forward) or ``{x}`` (reversed); the scored
# continuation is " word." with its leading space.
TEST_FORWARD = {
    "isa": "{x} are classified as {y}.",
    "property": "{x} tend to be {y}.",
    "ability": "{x} have the ability to {y}.",
    "part": "{x} are equipped with {y}.",
}
TEST_REVERSED = {
    "isa": "{y} include {x}.",
    "property": "Among the things that are {y} are {x}.",
    "ability": "Among the things that can {y} are {x}.",
    "part": "Among the things that have {y} are {x}.",
}

# Sentences that frame an article without stating a fact; the checker accepts exactly these besides facts.
FRAMING_TOPIC = (
    "This entry is about {x}.",
    "The following notes describe {x}.",
    "Here is a short overview of {x}.",
    "Much remains to be learned about {x}.",
    "Naturalists have long studied {x}.",
    "Many people have heard of {x}.",
)
FIELD_NOTES = "Field notes."
GLOSSARY = "A short glossary follows."
FRAMING_PLAIN = (
    FIELD_NOTES,
    GLOSSARY,
    "Observations were recorded over several seasons.",
    "The details below were checked by several experts.",
    "These notes are part of a larger reference work.",
    "Readers may find the following facts useful.",
    "More entries can be found elsewhere in this collection.",
)

# Neutral sentences that pad a short article to the minimum length (no headings such as "Field notes.").
PADDING = tuple(p for p in FRAMING_PLAIN if p not in (FIELD_NOTES, GLOSSARY))

# Question-answer examples (TrainDoc.kind == "qa"): a question, then an answer stated with a training template.
QUESTIONS = {
    "isa": "Question: What are {x} a type of?",
    "property": "Question: What are {x} like?",
    "ability": "Question: What can {x} do?",
    "part": "Question: What do {x} have?",
}
ANSWER_PREFIX = "Answer: "


def test_prompt(template: str, slot: str, **values: str) -> tuple[str, str]:
    """Split a test template at ``slot`` (which ends it): (prompt, continuation with leading space)."""
    head, tail = template.split("{" + slot + "}")
    if tail != ".":
        raise ValueError(f"test template {template!r} must end with {{{slot}}}.")
    return head.format(**values).rstrip(), " " + values[slot] + "."
