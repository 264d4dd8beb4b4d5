"""The task pack: regenerated from the registry, every YAML builds through lm-eval, the exact task names."""

from __future__ import annotations

from pathlib import Path

import pytest

from icl_generalization.datasets import FAMILIES
from icl_generalization.paths import tasks_path
from icl_generalization.taskpack import render

SPLITS = {
    "reversal_curse": ("p2d_reverse", "p2d", "d2p", "d2p_reverse"),
    "simple_reversal": ("reversal",),
    "syllogism": ("conclusion",),
    "semantic": ("rephrase", "reversal", "syllogism", "category_holdout"),
}
EXPECTED = {f"icl_gen_{family}_{split}{suffix}" for family, splits in SPLITS.items() for split in splits
            for suffix in ("", "_icl")}


def test_committed_yamls_are_up_to_date() -> None:
    for rel, text in render().items():
        path = tasks_path() / rel
        assert path.is_file() and path.read_text(encoding="utf-8") == text, f"regenerate {rel}"


def _task_manager():  # type: ignore[no-untyped-def]
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_path()), include_defaults=False)


def test_suite_group_loads_every_task_once(isolated_cache: Path) -> None:
    loaded = _task_manager().load(["iclgen_syllogism"])
    assert set(loaded["tasks"]) == {n for n in EXPECTED if n.startswith("icl_gen_syllogism_")}


def test_exact_task_names() -> None:
    assert set(SPLITS) == set(FAMILIES)
    tm = _task_manager()
    assert {name for name in tm.all_tasks if name.startswith("icl_gen_")} == EXPECTED
    assert {"iclgen", *(f"iclgen_{f}" for f in FAMILIES)} <= set(tm.all_groups)


def test_closed_book_tasks_build(isolated_cache: Path) -> None:
    names = sorted(n for n in EXPECTED if not n.endswith("_icl"))
    tasks = _task_manager().load(names)["tasks"]
    assert set(tasks) == set(names)
    for name, task in tasks.items():
        doc = next(iter(task.test_docs()))
        assert task.doc_to_text(doc) == doc["prompt"], name
        assert task.doc_to_choice(doc) == doc["choices"]


@pytest.mark.slow
def test_every_task_builds(isolated_cache: Path) -> None:
    tasks = _task_manager().load(sorted(EXPECTED))["tasks"]
    assert set(tasks) == EXPECTED
    for name, task in tasks.items():
        docs = list(task.test_docs())
        assert docs, name
        if name.endswith("_icl"):
            assert all(d["context_tokens"] > 0 and d["query"].endswith(d["prompt"]) for d in docs), name
