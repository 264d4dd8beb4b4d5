"""SIGKILL half-way through `generate` and `augment`: the rerun completes, its output is byte-identical to
an uninterrupted run's, and no temporary is left behind.

The kill is placed deterministically: a wrapper patches one call the command makes (a rename, a corpus append)
to SIGKILL its own process at that point, then runs the real CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_model import TINY_RECIPE
from tree_snapshot import snapshot

from icl_generalization.core.paths import is_temp_name

REPO = Path(__file__).resolve().parents[1]

KILL_AT_RENAME = """
import os, signal, sys
real_replace, count = os.replace, 0
def replace(src, dst):
    global count
    count += 1
    if count == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary is written, the rename never happens
    real_replace(src, dst)
os.replace = replace
from icl_generalization.cli import main
sys.exit(main(sys.argv[2:]))
"""

# Writes half of the second batch's first line, then dies: the torn line a kill mid-write leaves.
KILL_IN_APPEND = """
import os, signal, sys
from icl_generalization.training import augment
real_append, calls = augment.CorpusWriter.append, []
def append(self, rows):
    calls.append(1)
    if len(calls) == 2:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write('{"mode": "local", "source_id": "torn')
        os.kill(os.getpid(), signal.SIGKILL)
    real_append(self, rows)
augment.CorpusWriter.append = append
from icl_generalization.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _python("-m", "icl_generalization.cli", *args, cwd=cwd)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_name(p.name)]


def test_generate_killed_mid_run_then_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["generate", "all", "--out"]
    assert _cli(*args, "clean", cwd=tmp_path).returncode == 0
    killed = _python("-c", KILL_AT_RENAME, "12", *args, "resumed", cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = _temporaries(tmp_path / "resumed")
    assert left, "the kill should have left a temporary for the rerun to sweep"
    assert not (tmp_path / "resumed" / "syllogism").exists()  # it died part-way, before the last family
    rerun = _cli(*args, "resumed", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert not _temporaries(tmp_path / "resumed")
    assert snapshot(tmp_path / "resumed") == snapshot(tmp_path / "clean")


@pytest.mark.slow  # three runs of the tiny model in fresh processes: about a minute on 2 cores
def test_augment_killed_mid_write_then_rerun_matches_an_uninterrupted_run(tmp_path: Path,
                                                                          tiny_model_path: Path) -> None:
    # Greedy decoding, one input per batch: an uninterrupted run and a resumed one make the same calls.
    args = ["augment", "--dataset", "reversal_curse", "--model", str(tiny_model_path), "--limit", "4",
            "--temperature", "0", "--outputs-per-input", "1", "--batch-size", "1", "--max-new-tokens", "6",
            "--device", "cpu", "--out"]
    assert _cli(*args, "clean.jsonl", cwd=tmp_path).returncode == 0
    killed = _python("-c", KILL_IN_APPEND, *args, "resumed.jsonl", cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "resumed.jsonl").read_text().endswith("\n")  # a torn last line
    rerun = _cli(*args, "resumed.jsonl", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert '"inputs_already_done": 1' in rerun.stdout
    assert (tmp_path / "resumed.jsonl").read_bytes() == (tmp_path / "clean.jsonl").read_bytes()
    assert not _temporaries(tmp_path)


# Dies right after training step 3 (the checkpoint of step 2 is on disk, the final adapter and manifest are not).
KILL_AFTER_STEP = """
import os, signal, sys
from transformers import TrainerCallback
from icl_generalization.training import finetune

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

real_run = finetune.run_finetune
finetune.run_finetune = lambda request, callbacks=(): real_run(request, callbacks=[*callbacks, Kill()])
from icl_generalization.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow  # three tiny finetunes in fresh processes
def test_finetune_killed_mid_training_then_resumed_matches_an_uninterrupted_run(tmp_path: Path,
                                                                                tiny_model_path: Path) -> None:

    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE, encoding="utf-8")

    def args(name: str) -> list[str]:
        return ["finetune", "--recipe", "tiny.yaml", "--name", name, "--dataset", "reversal_curse",
                "--base", str(tiny_model_path), "--out", f"runs/{name}", "--manifest", f"{name}.yaml",
                "--no-progress"]

    assert _cli(*args("clean"), cwd=tmp_path).returncode == 0
    killed = _python("-c", KILL_AFTER_STEP, "3", *args("resumed"), cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "resumed.yaml").exists()  # died before the manifest: nothing half-written
    rerun = _cli(*args("resumed"), "--resume", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    clean = yaml.safe_load((tmp_path / "clean.yaml").read_text(encoding="utf-8"))
    resumed = yaml.safe_load((tmp_path / "resumed.yaml").read_text(encoding="utf-8"))
    assert resumed["steps"] == clean["steps"] == 4 and resumed["resumed_from_step"] == 2
    # The same weights, byte for byte: resuming restores optimizer, scheduler, RNG and data order.
    assert json.dumps(resumed["adapter"]["files"], sort_keys=True) == json.dumps(clean["adapter"]["files"],
                                                                                  sort_keys=True)
    assert not _temporaries(tmp_path)


def _results_of(run: Path) -> dict[str, object]:
    """What a reproduction produced, as opposed to how long it took or how much work one run of it did: the
    data, the augmented corpus, both adapters' file digests and the leaderboard."""

    def scores(value: object) -> object:  # the leaderboard without the results files' names (dated per run)
        if isinstance(value, dict):
            return {k: scores(v) for k, v in value.items() if k not in ("run", "runs")}
        return [scores(v) for v in value] if isinstance(value, list) else value

    produced: dict[str, object] = {}
    for name in ("data/syllogism/data/test.jsonl", "augment/syllogism/corpus.jsonl"):
        produced[name] = (run / name).read_bytes()
    produced["leaderboard"] = scores(json.loads((run / "leaderboard/board/leaderboard.json").read_text()))
    for kind in ("ft", "aug_ft"):
        manifest = yaml.safe_load((run / f"finetune-{kind}/syllogism/syllogism-{kind}.yaml").read_text())
        produced[kind] = manifest["adapter"]["files"]
    return produced


@pytest.mark.slow  # three smoke runs of the whole pipeline on the tiny model
def test_reproduce_killed_mid_run_then_rerun_matches_an_uninterrupted_run(tmp_path: Path,
                                                                          tiny_model_path: Path) -> None:
    args = ["reproduce", "--preset", "smoke", "--model", str(tiny_model_path), "--families", "syllogism", "--out"]
    assert _cli(*args, "clean", cwd=tmp_path).returncode == 0
    # The 19th rename is the augment stage's record: data, the evaluations and the first finetune have finished,
    # the corpus is written, the stage is not marked done.
    killed = _python("-c", KILL_AT_RENAME, "19", *args, "resumed", cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "resumed" / "run.json").exists()
    rerun = _cli(*args, "resumed", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "done earlier, skipped" in rerun.stdout
    assert not _temporaries(tmp_path / "resumed")
    assert _results_of(tmp_path / "resumed") == _results_of(tmp_path / "clean")
