"""Shared fixtures: a tiny Llama built from a config (fast paths) and the real default model (slow paths)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BERGLUND = SHARED_DATA / "reversal_curse_berglund2023"


@pytest.fixture(scope="session", autouse=True)
def _offline_hub() -> None:
    # Nothing may come from a hub at test time; failing fast beats waiting for network time-outs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The converted default model (converted once per cache; about 25 s the first time)."""
    from icl_generalization.weights.default_model import converted_path

    return converted_path()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory, default_model_path: Path) -> Path:
    """A 2-layer Llama with random weights and the default model's real tokenizer (see tiny_model.py)."""
    from tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), default_model_path)


def _linked_cache(cache: Path, default_model_path: Path) -> Path:
    """An ICL_GEN_CACHE folder at ``cache`` with the converted default model linked in (nothing converted again)."""
    (cache / "models").mkdir(parents=True)
    (cache / "models" / default_model_path.name).symlink_to(default_model_path)
    return cache


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_model_path: Path) -> Path:
    """A fresh ICL_GEN_CACHE for task-building caches, with the converted default model linked in."""
    cache = _linked_cache(tmp_path / "cache", default_model_path)
    monkeypatch.setenv("ICL_GEN_CACHE", str(cache))
    from icl_generalization.tasks import rows

    rows.CACHE_STATS.update(built=0, read=0)
    return cache


@pytest.fixture(scope="module")
def task_cache(tmp_path_factory: pytest.TempPathFactory, default_model_path: Path) -> Iterator[Path]:
    """``isolated_cache`` shared by a module's tests (their task builds reuse each other's cached rows)."""
    cache = _linked_cache(tmp_path_factory.mktemp("cache"), default_model_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ICL_GEN_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def dummy_run(tmp_path_factory: pytest.TempPathFactory, default_model_path: Path) -> Path:
    """A real lm-eval run (dummy model, --log_samples) of two reversal-curse tasks; compare and check use it."""
    from lm_eval_runs import lm_eval_run

    return lm_eval_run("dummy", tmp_path_factory.getbasetemp() / "lm_eval_runs", default_model_path)


@pytest.fixture(scope="session")
def other_data_run(tmp_path_factory: pytest.TempPathFactory, default_model_path: Path) -> Path:
    """The same run on other data (another data seed, so another dataset fingerprint)."""
    from lm_eval_runs import lm_eval_run

    return lm_eval_run("dummy_other_data", tmp_path_factory.getbasetemp() / "lm_eval_runs", default_model_path)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models' ops take microseconds; on a shared 2-core machine, OpenMP threads spinning against other
    processes make them 20x slower. Modules of tiny-model tests use one thread (``pytestmark``)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
