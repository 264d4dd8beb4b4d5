"""Training examples, loss masks and recipes: pure functions, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.data.records import TrainDoc
from icl_generalization.training.corpus import (
    IGNORE_INDEX,
    Collator,
    Example,
    build_examples,
    encode,
    examples_from_text,
    read_corpus,
    split_sentences,
)
from icl_generalization.training.recipes import available_recipes, load_recipe


class CharTokenizer:
    """One token per character: makes the label arithmetic easy to check by eye."""

    eos_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        assert not add_special_tokens
        return {"input_ids": [ord(c) for c in text]}


def test_split_sentences_keeps_quotes_and_abbreviations() -> None:
    text = 'Dr. Ada Vance wrote "Blue Harbor." It sold well! Was it read? Yes. 3 copies remain.'
    assert split_sentences(text) == ['Dr. Ada Vance wrote "Blue Harbor."', "It sold well!", "Was it read?", "Yes.",
                                     "3 copies remain."]
    assert split_sentences("  one sentence only  ") == ["one sentence only"]
    # nonsense-word sentences start in lowercase and must still split
    assert split_sentences("kound are laind. laind can vorp.") == ["kound are laind.", "laind can vorp."]


def test_splitting_modes() -> None:
    text = "A is B. C is D. E is F."
    assert [e.completion for e in examples_from_text(text, "none")] == [text]
    independent = examples_from_text(text, "independent")
    assert [(e.context, e.completion) for e in independent] == [("", "A is B."), ("", "C is D."), ("", "E is F.")]
    cumulative = examples_from_text(text, "cumulative")
    assert [(e.context, e.completion) for e in cumulative] == [
        ("", "A is B."), ("A is B.", "C is D."), ("A is B. C is D.", "E is F.")]
    # A question and its answer stay together whatever the split; the question is the prompt.
    qa = examples_from_text("Are gruds abmes? Yes, they are.", "independent", kind="qa")
    assert qa == [Example(completion="Yes, they are.", prompt="Are gruds abmes?")]


def test_encode_masks_context_always_and_prompt_in_completion_mode() -> None:
    tok = CharTokenizer()
    ex = Example(completion="cd", context="a", prompt="b")
    completion = encode(ex, tok, "completion", 100)
    # context "a", prompt " b", completion " cd" + eos
    assert completion.input_ids == [ord(c) for c in "a b cd"] + [0]
    assert completion.labels == [IGNORE_INDEX] * 3 + [ord(c) for c in " cd"] + [0]
    document = encode(ex, tok, "document", 100)
    assert document.labels == [IGNORE_INDEX] + [ord(c) for c in " b cd"] + [0]
    # Too long: the context goes first, from the left.
    cut = encode(Example(completion="xy", context="abcdef"), tok, "completion", 6)
    assert cut.truncated and cut.input_ids == [ord(c) for c in "ef xy"] + [0]
    assert cut.labels[:2] == [IGNORE_INDEX] * 2


def test_collator_pads_by_length_not_token_id() -> None:
    batch = Collator(pad_token_id=0)([{"input_ids": [5, 0], "labels": [5, 0]}, {"input_ids": [7], "labels": [7]}])
    # The first row's trailing 0 is an end-of-sequence token and keeps its label.
    assert batch["labels"].tolist() == [[5, 0], [7, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]


def test_augmented_corpus_is_read_and_split(tmp_path: Path) -> None:
    path = tmp_path / "aug.jsonl"
    rows = [{"source_id": "d1", "text": "X is Y. Y is X.", "prompt_version": "v1", "model": "m"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    corpus = read_corpus(path)
    examples = build_examples([TrainDoc(id="d1", text="X is Y.")], corpus, "independent")
    assert [(e.source, e.completion) for e in examples] == [("d1", "X is Y."), ("aug:d1", "X is Y."),
                                                            ("aug:d1", "Y is X.")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source_id": "d1"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="'text'"):
        read_corpus(bad)
    with pytest.raises(UserError, match="not found"):
        read_corpus(tmp_path / "missing.jsonl")


def test_shipped_recipes_load() -> None:
    assert {"cpu-small", "paper"} <= set(available_recipes())
    small = load_recipe("cpu-small")
    assert (small.base, small.dataset, small.method) == ("smollm2-135m", "reversal_curse", "lora")
    assert 100 <= small.max_steps <= 1000
    paper = load_recipe("paper")
    assert paper.learning_rate == 3e-4 and paper.batch_size in (8, 16)


@pytest.mark.parametrize(("body", "expected"), [
    ("split: sideways", r"r\.yaml: split: expected 'none', 'independent' or 'cumulative' \(got 'sideways'\)"),
    ("lora_rank: 8", r"r\.yaml: lora_rank: unknown field"),
    ("target_modules: 5", r"target_modules: expected 'all-linear' or a list of module names \(got 5\)"),
    ("seed: x", r"seed: expected a valid integer.*\(got 'x'\)"),
    ("max_steps: true", r"max_steps: expected an integer, not a boolean"),
    ("learning_rate: -1", r"learning_rate: expected greater than 0 \(got -1\)"),
    ("batch_size: 8\ngradient_accumulation_steps: 3", r"batch_size 8 is not a multiple of gradient_accumulation"),
    ("- a list", r"r\.yaml: expected a mapping of fields, got list"),
    ("a: [unclosed", r"r\.yaml: not valid YAML"),
])
def test_recipe_errors_name_the_file_field_and_value(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(body + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=expected) as caught:
        load_recipe(str(path))
    assert "\n" not in str(caught.value)


def test_recipe_numbers_that_yaml_reads_as_strings_are_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads `1e-3` (no dot) as a string; a recipe means the number.
    path = tmp_path / "r.yaml"
    path.write_text("learning_rate: 1e-3\ntarget_modules: [q_proj, v_proj]\n", encoding="utf-8")
    recipe = load_recipe(str(path))
    assert recipe.learning_rate == 1e-3
    assert recipe.to_dict()["target_modules"] == ["q_proj", "v_proj"]


def test_recipe_overrides_are_validated_too() -> None:
    with pytest.raises(UserError, match="max_steps"):
        load_recipe("cpu-small").with_overrides(max_steps=0)
    with pytest.raises(UserError, match="unknown recipe"):
        load_recipe("no-such-recipe")
