"""The cached model class beyond one process and one device: data-parallel processes (gloo on CPU) give the same
per-sample results as one process, and a model dispatched over devices (``parallelize=True``) keeps the cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.scoring.cached_hflm import PrefixCachedHFLM

REPO = Path(__file__).resolve().parents[1]
TASKS = ("icl_gen_reversal_curse_p2d_reverse_icl", "icl_gen_reversal_curse_p2d_reverse")
LIMIT = 24


def _bare_lm(**attributes: Any) -> PrefixCachedHFLM:
    lm = PrefixCachedHFLM.__new__(PrefixCachedHFLM)  # the two helpers read only these attributes
    lm._rank, lm._world_size = 0, 1
    for name, value in attributes.items():
        setattr(lm, name, value)
    return lm


def test_cpu_processes_take_their_rank_from_accelerate() -> None:
    lm = _bare_lm(accelerator=SimpleNamespace(num_processes=2, process_index=1))
    lm._join_cpu_processes()
    assert (lm.rank, lm.world_size) == (1, 2)
    single = _bare_lm()  # no accelerator: one process
    single._join_cpu_processes()
    assert (single.rank, single.world_size) == (0, 1)


def test_processes_without_a_group_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun's, with no process group formed
    with pytest.raises(UserError, match="ACCELERATE_USE_CPU"):
        _bare_lm()._join_cpu_processes()
    _bare_lm()._join_cpu_processes(tensor_parallel=True)  # lm-eval's tp_plan: one model over the processes


def test_automatic_batch_size_is_detected_where_every_process_is() -> None:
    calls: list[int] = []

    def detect(requests: Any, pos: int) -> int:
        calls.append(pos)
        return 3

    requests = [(None, [1] * 5, [2]), (None, [1] * 9, [2, 3]), (None, [1] * 2, [2])]
    lm = _bare_lm(batch_size_per_gpu="auto", _detect_batch_size=detect)
    lm._rank, lm._world_size = 1, 2
    assert lm._collective_batch_size(requests, None) == 3 and calls == [1]  # the longest request
    assert lm._collective_batch_size(requests, 5) == 5  # lm-eval's own override stands
    lm._world_size = 1
    assert lm._collective_batch_size(requests, None) is None and calls == [1]  # one process: HFLM's own way
    lm._world_size, lm.batch_size_per_gpu = 2, 8
    assert lm._collective_batch_size(requests, None) is None and calls == [1]


@pytest.mark.usefixtures("one_torch_thread")
def test_parallelize_keeps_the_cached_path(tiny_model_path: Path, tmp_path: Path) -> None:
    """``parallelize=True`` dispatches the model with accelerate's ``device_map="auto"``; with no GPU here,
    lm-eval gives it no device memory, so every layer is offloaded (``meta`` parameters, weights streamed from
    ``offload_folder``) and the hooks run it on the CPU: the least convenient layout for the cached path."""
    from icl_generalization.scoring.model_class import ICLGenLM

    plain = ICLGenLM(pretrained=str(tiny_model_path), device="cpu", prefix_min_tokens=64)
    split = ICLGenLM(pretrained=str(tiny_model_path), device="cpu", prefix_min_tokens=64, parallelize=True,
                     offload_folder=str(tmp_path / "offload"))
    assert getattr(split.model, "hf_device_map", None), "parallelize=True did not dispatch the model"
    assert split.prefix_cache_verdict() is None
    context = list(range(1000, 1120))
    requests = [(None, context, [500 + i, 600 + i]) for i in range(6)]
    expected = plain._stock(requests, range(len(requests)), True, None)
    got = split._loglikelihood_tokens(requests, disable_tqdm=True)
    assert split.prefix_stats["cached_requests"] == len(requests)
    assert [g[0] for g in got] == pytest.approx([e[0] for e in expected], abs=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(folder: Path, task: str) -> dict[int, dict[str, Any]]:
    (path,) = folder.rglob(f"samples_{task}_2*.jsonl")
    return {row["doc_id"]: row for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


@pytest.mark.slow
def test_two_cpu_processes_score_every_sample_as_one_does(tmp_path: Path, tiny_model_path: Path,
                                                          default_model_path: Path) -> None:
    """``icl-gen eval`` in one process and under ``accelerate launch`` with two (gloo): the same log-likelihood
    for every choice of every sample, each process scoring its half with its own prefix cache and probe.
    ``--multi_gpu`` is what makes accelerate start several processes (with ``--cpu`` it starts one);
    ``ACCELERATE_USE_CPU`` puts them on the CPU. ``batch_size=auto`` exercises the collective detection."""
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / default_model_path.name).symlink_to(default_model_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ICL_GEN_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    eval_args = ["eval", "--model", "icl-gen", "--model_args", f"pretrained={tiny_model_path},prefix_min_tokens=64",
                 "--tasks", ",".join(TASKS), "--limit", str(LIMIT), "--batch_size", "auto", "--max_batch_size", "4",
                 "--log_samples", "--metadata", json.dumps({"context_budget": 256})]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "icl_generalization"]
    runs = {"one": [sys.executable, "-m", "icl_generalization"], "two": launch}
    logs = {}
    for name, command in runs.items():
        done = subprocess.run([*command, *eval_args, "--output_path", str(tmp_path / name)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        logs[name] = done.stderr
    assert "on rank 1" in logs["two"] and "on rank 1" not in logs["one"]
    assert len(list((tmp_path / "two").rglob("results_*.json"))) == 1  # rank 0 alone writes
    assert "(prefix cache)" in logs["two"] and "prefix cache off" not in logs["two"]
    for task in TASKS:
        one, two = _samples(tmp_path / "one", task), _samples(tmp_path / "two", task)
        assert sorted(one) == sorted(two) == list(range(LIMIT))
        for doc_id, row in one.items():
            other = two[doc_id]
            assert [float(r[0][0]) for r in other["resps"]] == pytest.approx(
                [float(r[0][0]) for r in row["resps"]], abs=1e-4)
            assert other["acc"] == row["acc"]
