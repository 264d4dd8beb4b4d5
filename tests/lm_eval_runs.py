"""Real lm-eval output for the compare/check tests: the tiny model run through ``icl-gen eval`` with
``--log_samples``, once per test session, plus helpers that plant changes in copies of it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TASKS = ("icl_gen_reversal_curse_p2d_reverse", "icl_gen_reversal_curse_p2d_reverse_icl")
LIMIT = 24
_RUNS: dict[str, Path] = {}


def _evaluate(out: Path, cache: Path, model: list[str], tasks: tuple[str, ...], metadata: dict[str, Any]) -> Path:
    from icl_generalization.scoring.lm_eval_cli import run_lm_eval

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ICL_GEN_CACHE", str(cache))  # task caches stay out of the user's cache
        # Seed 3: lm-eval's dummy model (random scores) then gets 8 of the closed-book task's 24 items right,
        # enough for the gate tests to plant a drop of 6.
        code = run_lm_eval([*model, "--tasks", ",".join(tasks), "--limit", str(LIMIT), "--batch_size", "8",
                            "--seed", "3", "--log_samples", "--output_path", str(out),
                            "--metadata", json.dumps(metadata)])
    assert code == 0
    return out


def lm_eval_run(name: str, root: Path, default_model: Path, tiny_model: Path | None = None) -> Path:
    """A real lm-eval run, made once per session.

    ``dummy``: lm-eval's ``dummy`` model (seeded random scores, instant) on closed-book and ICL tasks;
    ``dummy_other_data``: the same on another data seed, so a different dataset fingerprint;
    ``tiny``: the tiny Llama through the package's ``icl-gen`` model (slow tests only).
    A small context budget keeps the ICL prompts short: 2k-token prompts cost minutes on 2 cores.
    """
    if name not in _RUNS:
        cache = root / "cache"
        if not (cache / "models" / default_model.name).exists():
            # In-context tasks size prompts with the default model's tokenizer unless told otherwise.
            (cache / "models").mkdir(parents=True, exist_ok=True)
            (cache / "models" / default_model.name).symlink_to(default_model)
        metadata: dict[str, Any] = {"context_budget": 256}
        if name == "dummy":
            _RUNS[name] = _evaluate(root / name, cache, ["--model", "dummy"], TASKS, metadata)
        elif name == "dummy_other_data":
            _RUNS[name] = _evaluate(root / name, cache, ["--model", "dummy"], TASKS, {**metadata, "data_seed": 7})
        elif name == "tiny" and tiny_model is not None:
            _RUNS[name] = _evaluate(root / name, cache, ["--model", "icl-gen", "--model_args",
                                                         f"pretrained={tiny_model}"], TASKS, metadata)
        else:
            raise KeyError(name)
    return _RUNS[name]


def results_file(folder: Path) -> Path:
    (found,) = list(folder.rglob("results_*.json"))
    return found


def samples_file(folder: Path, task: str) -> Path:
    (found,) = list(folder.rglob(f"samples_{task}_2*.jsonl"))
    return found


def planted_copy(source: Path, dest: Path, edit_results: Callable[[dict[str, Any]], None] | None = None,
                 edit_samples: Callable[[str, list[dict[str, Any]]], None] | None = None) -> Path:
    """Copy a run folder and edit its results JSON and/or per-sample lines in place; returns ``dest``."""
    shutil.copytree(source, dest)
    if edit_results:
        path = results_file(dest)
        data = json.loads(path.read_text())
        edit_results(data)
        path.write_text(json.dumps(data, indent=2))
    if edit_samples:
        for path in dest.rglob("samples_*.jsonl"):
            task = next(t for t in sorted(TASKS, key=len, reverse=True) if path.name.startswith(f"samples_{t}_"))
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            edit_samples(task, lines)
            path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return dest


def cluster_by(label: Callable[[dict[str, Any]], str | None]) -> Callable[[str, list[dict[str, Any]]], None]:
    """An ``edit_samples`` that gives the logged documents of both tasks a ``cluster`` (the fact each tests), as
    task rows carry it since logs grew the field; ``label`` maps a sample line to its cluster, None to none."""
    def edit(_task: str, lines: list[dict[str, Any]]) -> None:
        for line in lines:
            if (cluster := label(line)) is not None:
                line["doc"]["cluster"] = cluster
            else:  # as a log written before task rows carried the field
                line["doc"].pop("cluster", None)
    return edit


# Logs as they were before task rows named the fact each item tests.
without_clusters = cluster_by(lambda line: None)
