"""Across architectures, the cached path is exact or refused by its probe; it is never trusted and wrong.

A fast subset runs by default: the common families, hybrid and sliding-window ones with a window shorter than
the prefix, and the ones known to break packed forwards silently (GPT-Neo's local attention, MPT's ALiBi, BART's
positions) or loudly (BLOOM and Falcon's ALiBi, openai-gpt, RWKV); those run unpacked where that is exact, and
the stock way where it is not. The whole matrix is slow; see docs/performance.md.
"""

from __future__ import annotations

import pytest
from architecture_matrix import WINDOW, Outcome, attention_based, build, independent_error, matrix, run

FAST: list[tuple[str, int | None]] = [
    ("llama", None), ("gpt2", None), ("gpt_neox", None), ("phi", None), ("opt", None), ("falcon", None),
    ("gemma2", WINDOW), ("gemma3_text", WINDOW), ("mistral", WINDOW), ("qwen2", WINDOW), ("starcoder2", WINDOW),
]
# Where packed forwards really are wrong (checked below, so the probe's refusal is not a false alarm).
SILENTLY_WRONG = [("gpt_neo", None), ("gpt_neo", WINDOW), ("mpt", None), ("bart", None)]
CRASHING = ["bloom", "openai-gpt", "rwkv"]
# RoBERTa-style decoders number positions by counting non-pad tokens: with a pad id in the context, neither mode
# can continue that count from a cache; the probe's pad token finds it.
PAD_COUNTED = ["roberta", "xlm-roberta"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _check(outcome: Outcome) -> None:
    assert outcome.status != "WRONG", f"{outcome.architecture} ({outcome.variant}): trusted but {outcome.detail}"
    assert outcome.status in ("exact", "fallback", "skipped")
    if outcome.status == "fallback":
        assert outcome.detail  # the reason the log line will give


@pytest.mark.parametrize(("architecture", "window"), FAST)
def test_common_and_windowed_architectures_are_exact(architecture: str, window: int | None) -> None:
    outcome = run(architecture, window)
    assert outcome.status == "exact", outcome.detail


@pytest.mark.parametrize(("architecture", "window"), SILENTLY_WRONG)
def test_silently_wrong_packing_is_refused_and_the_unpacked_mode_is_exact(architecture: str,
                                                                          window: int | None) -> None:
    error, _ = independent_error(build(architecture, window))
    assert error > 1e-3  # packing would be wrong here: its refusal is the probe doing its job
    outcome = run(architecture, window)
    assert outcome.status == "exact", outcome.detail
    assert "unpacked (the cached path differs by up to" in outcome.detail


@pytest.mark.parametrize("architecture", CRASHING)
def test_crashing_architectures_never_raise(architecture: str) -> None:
    outcome = run(architecture)
    assert outcome.status in ("exact", "fallback") and outcome.detail
    assert "failed on a probe" in outcome.detail or "differs by up to" in outcome.detail


@pytest.mark.parametrize("architecture", PAD_COUNTED)
def test_positions_counted_from_pads_fall_back(architecture: str) -> None:
    outcome = run(architecture)
    assert outcome.status == "fallback" and "unpacked: the cached path differs by up to" in outcome.detail


def test_falcon_with_alibi_runs_unpacked() -> None:
    outcome = run("falcon", extra=("alibi", {"alibi": True}))
    assert outcome.status == "exact" and "unpacked" in outcome.detail


@pytest.mark.slow  # every causal-LM architecture of the installed transformers: about a minute on 2 cores
def test_every_buildable_architecture_is_exact_or_refused() -> None:
    outcomes = matrix()
    for outcome in outcomes:
        _check(outcome)
    built = [o for o in outcomes if o.status != "skipped"]
    assert len(built) >= 100  # the matrix really ran (most of transformers' ~200 causal LMs build tiny)
    attention = attention_based(outcomes)
    assert sum(o.status == "exact" for o in attention) >= 0.9 * len(attention)
