"""`icl-gen bench prefix-cache` end to end on the tiny model (the real figures come from the default model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from icl_generalization.cli import main


@pytest.fixture()
def _restore_threads() -> Iterator[None]:
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


@pytest.mark.slow  # two model paths at two lengths plus lm-eval task indexing: about a minute on 2 busy cores
@pytest.mark.usefixtures("_restore_threads")
def test_bench_sweeps_lengths_and_writes_the_figures(tmp_path: Path, tiny_model_path: Path, isolated_cache: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "prefix-cache", "--model", str(tiny_model_path), "--lengths", "300,450", "--limit", "3",
                 "--stock-questions", "1", "--min-tokens", "64", "--threads", "1", "--batch-groups", "4",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for words in ("SCALED", "speed-up", "token bound", "two-level minimum", "peak MiB cached", "peak memory: "):
        assert words in printed
    result = json.loads(out.read_text())
    assert [r["context_budget"] for r in result["lengths"]] == [300, 450]
    for row in result["lengths"]:
        assert row["requests"] == 12 and row["questions"] == 3
        sample = row["stock_sample"]
        assert sample == {**sample, "questions": 1, "requests": 4, "scale": 3.0}
        tokens = row["tokens"]
        # Each context once, each question once, each choice once (or less, where choices share a first token).
        assert tokens["cached"] <= tokens["two_level"] < tokens["one_level"] < tokens["stock_scaled"] / 2
        assert row["seconds"]["stock_scaled"] == pytest.approx(sample["seconds"] * 3)
        assert row["speedup"] == pytest.approx(row["seconds"]["stock_scaled"] / row["seconds"]["cached"])
        assert row["max_abs_diff"] <= 1e-4 and row["answers_agree"] and row["greedy_agree"]
        assert row["peak_mib"]["stock"] >= 0 and row["peak_mib"]["cached"] >= 0 and row["memory_method"]
    assert result["lengths"][1]["context_tokens_max"] > result["lengths"][0]["context_tokens_max"]
    assert result["batch_groups"] == 4 and "contexts batched (up to 4 per forward)" in printed


def test_bench_user_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "prefix-cache", "--lengths", "1024,lots"]) == 2
    assert main(["bench", "prefix-cache", "--limit", "0"]) == 2
    assert main(["bench", "prefix-cache", "--random-config", "huge"]) == 2
    assert main(["bench", "prefix-cache", "--batch-groups", "0"]) == 2
    assert main(["bench", "prefix-cache", "--recheck-nats=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["icl-gen: error: lengths: 'lots' is neither a positive token count nor 'full'",
                   "icl-gen: error: limit must be a positive integer, got '0'",
                   "icl-gen: error: random-config must be one of tiny, llama-1b, llama-7b, got 'huge'",
                   "icl-gen: error: batch-groups must be a positive integer, got 0",
                   "icl-gen: error: recheck-nats must be a finite number of at least 0, got '-1'"]


def test_a_random_config_model_has_the_tokenizers_vocabulary() -> None:
    from icl_generalization.scoring.random_models import random_model

    model = random_model("tiny", 1000, torch.bfloat16, "cpu", {"eos_token_id": 3})
    assert model.dtype == torch.bfloat16 and model.config.vocab_size == 1000 and model.config.eos_token_id == 3
    assert model.config._attn_implementation == "sdpa" and not model.training
