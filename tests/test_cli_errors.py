"""User errors: one line naming the problem, a non-zero exit, no traceback, nothing half-written."""

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "icl_generalization.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                        "HOME": str(Path.home())}, timeout=300)


def test_unknown_model_name() -> None:
    proc = _run("eval", "--model_args", "pretrained=no-such-model", "--tasks", "icl_gen_reversal_curse_p2d",
                "--limit", "1")
    assert proc.returncode == 2
    assert "unknown model 'no-such-model'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_family_and_bad_config(tmp_path: Path) -> None:
    proc = _run("generate", "reversal_curse", "--out", str(tmp_path / "o"), "--config", '{"people": 3}')
    assert proc.returncode == 2 and "unknown config field(s) people" in proc.stderr
    proc = _run("generate", "reversal_curse", "--out", str(tmp_path / "o"), "--config", "[1]")
    assert proc.returncode == 2 and "--config must be a JSON object" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["generate"], ["generate", "nonsense", "--out", "x"], ["frobnicate"]])
def test_argparse_errors_exit_non_zero(args: list[str]) -> None:
    proc = _run(*args)
    assert proc.returncode == 2 and "usage:" in proc.stderr
