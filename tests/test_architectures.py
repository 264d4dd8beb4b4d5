"""Across architectures, the cached path is exact or refused by its probe; it is never trusted and wrong.

A fast subset runs by default: the common families, hybrid and sliding-window ones with a window shorter than
the prefix, and the ones known to break the cached path silently (GPT-Neo's local attention, MPT's ALiBi) or
loudly (BLOOM and Falcon's ALiBi, openai-gpt, RWKV). The whole matrix is slow; see docs/performance.md.
"""

from __future__ import annotations

import pytest
from architecture_matrix import WINDOW, Outcome, build, independent_error, matrix, run

FAST: list[tuple[str, int | None]] = [
    ("llama", None), ("gpt2", None), ("gpt_neox", None), ("phi", None), ("opt", None), ("falcon", None),
    ("gemma2", WINDOW), ("gemma3_text", WINDOW), ("mistral", WINDOW), ("qwen2", WINDOW), ("starcoder2", WINDOW),
]
# Where the cached path really is wrong (checked below, so the probe's refusal is not a false alarm).
SILENTLY_WRONG = [("gpt_neo", None), ("gpt_neo", WINDOW), ("mpt", None)]
CRASHING = ["bloom", "openai-gpt", "rwkv"]


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
def test_silently_wrong_architectures_are_refused(architecture: str, window: int | None) -> None:
    error, _ = independent_error(build(architecture, window))
    assert error > 1e-3  # the cached path would be wrong here: a refusal is the probe doing its job
    outcome = run(architecture, window)
    assert outcome.status == "fallback" and "differs by up to" in outcome.detail


@pytest.mark.parametrize("architecture", CRASHING)
def test_crashing_architectures_are_refused_without_raising(architecture: str) -> None:
    outcome = run(architecture)
    assert outcome.status == "fallback" and outcome.detail


def test_falcon_with_alibi_is_refused() -> None:
    outcome = run("falcon", extra=("alibi", {"alibi": True}))
    assert outcome.status == "fallback"


@pytest.mark.slow  # every causal-LM architecture of the installed transformers: about a minute on 2 cores
def test_every_buildable_architecture_is_exact_or_refused() -> None:
    outcomes = matrix()
    for outcome in outcomes:
        _check(outcome)
    built = [o for o in outcomes if o.status != "skipped"]
    assert len(built) >= 100  # the matrix really ran (most of transformers' ~200 causal LMs build tiny)
    assert sum(o.status == "exact" for o in built) >= len(built) // 2
