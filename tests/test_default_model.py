"""The real default model end to end (slow: loads 135M parameters; CI runs it)."""

import json
from pathlib import Path

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.scoring.lm_eval_cli import run_lm_eval
from icl_generalization.weights.default_model import MARKER, resolve_model


def test_conversion_is_cached(default_model_path: Path) -> None:
    assert (default_model_path / MARKER).is_file()
    assert (default_model_path / "model.safetensors").is_file()
    assert resolve_model("smollm2-135m") == str(default_model_path)
    assert resolve_model(None) == str(default_model_path)


def test_model_names_that_cannot_resolve(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown model"):
        resolve_model("not-a-model")
    with pytest.raises(UserError, match=r"no config\.json"):
        resolve_model(str(tmp_path))
    assert resolve_model("HuggingFaceTB/SmolLM2-360M") == "HuggingFaceTB/SmolLM2-360M"


@pytest.mark.slow
def test_icl_gen_eval_on_the_default_model(tmp_path: Path, isolated_cache: Path) -> None:
    out = tmp_path / "results"
    code = run_lm_eval(["--model", "icl-gen", "--tasks",
                        "icl_gen_reversal_curse_p2d,icl_gen_reversal_curse_p2d_reverse_icl",
                        "--limit", "3", "--batch_size", "4", "--metadata", "context_budget=600",
                        "--output_path", str(out)])
    assert code == 0
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert set(results["results"]) == {"icl_gen_reversal_curse_p2d", "icl_gen_reversal_curse_p2d_reverse_icl"}
    assert results["config"]["model"] == "icl-gen"
    assert results["config"]["model_num_parameters"] > 100_000_000
