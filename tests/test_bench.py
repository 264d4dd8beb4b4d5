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


@pytest.mark.slow  # two model paths plus lm-eval task indexing: about 40 s on a busy 2-core machine
@pytest.mark.usefixtures("_restore_threads")
def test_bench_prints_and_writes_the_figures(tmp_path: Path, tiny_model_path: Path, isolated_cache: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "prefix-cache", "--model", str(tiny_model_path), "--limit", "3", "--context-tokens",
                 "300", "--min-tokens", "64", "--threads", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for words in ("tokens run", "minimum", "wall time", "speed-up", "max |log-likelihood difference|",
                  "chosen answers agree: yes"):
        assert words in printed
    result = json.loads(out.read_text())
    assert result["requests"] == 12 and result["questions"] == 3
    tokens = result["tokens"]
    # Packed scoring runs each context once and every continuation once: exactly the minimum, no padding.
    assert tokens["cached"] == tokens["minimum"] < tokens["stock"] / 4
    assert result["max_abs_diff"] <= 1e-4
    assert result["answers_agree"] and result["greedy_agree"]
    assert result["seconds"]["stock"] > 0 and result["speedup"] == pytest.approx(
        result["seconds"]["stock"] / result["seconds"]["cached"])


def test_bench_user_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "prefix-cache", "--skip-compare"]) == 2
    assert main(["bench", "prefix-cache", "--limit", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["icl-gen: error: nothing to run: --skip-compare needs --full-task",
                   "icl-gen: error: limit must be a positive integer, got 0"]
