"""TaskOptions: parsed once from lm-eval's keyword arguments, coerced, and refused in one line when wrong."""

import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from icl_generalization.core.errors import UserError
from icl_generalization.tasks.loader import load_task_dataset
from icl_generalization.tasks.options import MODEL_ARGS, TASK_ONLY_OPTIONS, TaskOptions


def test_values_arrive_as_text_or_as_lm_eval_parsed_them() -> None:
    options = TaskOptions.from_lm_eval({"context_budget": "2048", "max_length": "1e3", "context_margin": 8.0,
                                        "data_seed": 7, "sweep_lengths": "[2048,512,512]", "sweep_items": 1e2,
                                        "data_config": '{"n_items": 9}', "context_mode": "shard"})
    assert (options.context_budget, options.max_length, options.context_margin, options.data_seed) == (2048, 1000,
                                                                                                      8, 7)
    assert options.sweep_lengths == (512, 2048) and options.sweep_items == 100
    assert options.data_config == {"n_items": 9} and options.context_mode == "shard"
    assert TaskOptions.from_lm_eval({"sweep_lengths": "256,1024"}).sweep_lengths == (256, 1024)
    assert TaskOptions.from_lm_eval({"sweep_lengths": 256}).sweep_lengths == (256,)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("context_budget", "abc", "expected a whole number"),
    ("context_budget", True, "expected a whole number"),
    ("context_budget", 0, "greater than 0"),
    ("max_length", 1.5, "expected a whole number"),
    ("context_mode", "half", "'auto', 'full', 'subsample' or 'shard'"),
    ("sweep_lengths", "[300]", "among the sweep metrics"),
    ("sweep_lengths", "[512", "expected valid JSON"),
    # The bad element is named (sweep_lengths[1]) and shown.
    ("sweep_lengths", "512,abc", "sweep_lengths[1]: expected a whole number (got 'abc')"),
    ("data_config", "{not json", "expected valid JSON"),
    ("data_config", {"semantic": {}, "n_items": 9}, "not a mix"),
    ("data_source", "hub:x", "expected berglund:PATH"),
])
def test_a_bad_value_is_one_line_naming_option_value_and_expectation(key: str, value: object, expected: str) -> None:
    with pytest.raises(UserError) as caught:
        TaskOptions.from_lm_eval({key: value})
    message = str(caught.value)
    assert "\n" not in message and key in message and expected in message
    assert repr(value) in message or repr(value)[1:-1] in message or "(got 'abc')" in message


def test_the_loader_refuses_a_bad_option_before_building_anything() -> None:
    with pytest.raises(UserError, match=r"^task option: context_budget: expected a whole number \(got 'abc'\)$"):
        load_task_dataset("reversal_curse", "p2d", "closed_book", context_budget="abc", provenance={})


def test_model_and_lm_eval_keys_pass_by_but_a_typo_in_code_is_refused() -> None:
    options = TaskOptions.from_lm_eval({"dtype": "float32", "batch_size": 8, "version": 1.0, "provenance": {},
                                        "config_source": "x.yaml", "pretrained": "gpt2"})
    assert options == TaskOptions(pretrained="gpt2")
    with pytest.raises(ValidationError):
        TaskOptions(context_budjet=5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        options.context_budget = 5  # type: ignore[misc]


def test_the_model_drops_exactly_the_options_it_does_not_take() -> None:
    """Every option reaches the model as well (lm-eval passes --model_args to both): each one is either a real
    argument of the model class or in the set it drops, never forwarded to ``from_pretrained`` by accident."""
    from lm_eval.models.huggingface import HFLM

    from icl_generalization.scoring.model_class import ICLGenLM

    accepted = set(inspect.signature(ICLGenLM.__init__).parameters) | set(inspect.signature(HFLM.__init__).parameters)
    assert accepted >= MODEL_ARGS
    assert not TASK_ONLY_OPTIONS & accepted
    assert set(TaskOptions.model_fields) == TASK_ONLY_OPTIONS | MODEL_ARGS
    assert {"sweep_items", "sweep_lengths", "data_config", "context_budget"} <= TASK_ONLY_OPTIONS


def test_the_model_loads_with_every_task_only_option_in_its_args(tiny_model_path: Path) -> None:
    from icl_generalization.scoring.model_class import ICLGenLM

    lm = ICLGenLM(pretrained=str(tiny_model_path), device="cpu", batch_size=1, data_seed=3, data_config="{}",
                  data_source="berglund:x", context_budget=100, context_margin=4, context_mode="shard",
                  sweep_lengths="[512]", sweep_items=5)
    assert lm.get_model_info()["base_model"] == str(tiny_model_path)
