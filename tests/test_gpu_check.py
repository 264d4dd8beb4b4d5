"""scripts/gpu_check.py runs without lm-eval or the package's other dependencies (the GPU machine has neither)."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
# Imports made to fail, as on a machine with torch and transformers only.
RUN_BLOCKED = ("import runpy, sys\n"
               "for name in ('lm_eval', 'pydantic', 'icl_generalization'):\n"
               "    sys.modules[name] = None\n"
               "sys.argv = sys.argv[1:]\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n")


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: 20 s to 90 s on 2 busy cores
def test_gpu_check_tiny_on_cpu_without_lm_eval(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    command = [sys.executable, "-c", RUN_BLOCKED, str(SCRIPT), "--device", "cpu", "--tiny", "--dtypes", "float32",
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert "scaled" in figures["note"]
    runs = figures["runs"]
    assert [(r["dtype"], r["context_tokens"]) for r in runs] == [("float32", 96), ("float32", 160)]
    for run in runs:
        assert run["max_abs_diff"] <= 1e-4 and run["best_choice_agree"]
        tokens = run["tokens"]
        assert tokens["cached"] <= tokens["two_level_minimum"] < tokens["stock"]
        assert run["stock_sample"] == {"questions": 2, "requests": 8, "scale": 1.5}
        assert run["peak_mib"]["cached"] >= 0 and run["memory_method"].startswith("peak RSS")
    # Six short contexts in waves give what they give one group at a time.
    [waves] = figures["waves"]
    assert waves["groups"] == 6 and waves["waves"]["waves"] >= 1 and waves["alone"]["waves"] == 0
    assert waves["waves"]["groups_in_waves"] >= 2 and waves["max_abs_diff"] <= 1e-4 and waves["speedup"] > 0


def test_gpu_check_never_replaces_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    out.write_text("mine")
    script = runpy.run_path(str(SCRIPT))
    with pytest.raises(SystemExit) as refused:
        script["main"](["--device", "cpu", "--tiny", "--out", str(out)])
    assert refused.value.code == 2 and "exists" in capsys.readouterr().err
    assert out.read_text() == "mine"
