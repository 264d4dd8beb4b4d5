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
    assert proc.returncode == 2 and "reversal_curse: people: unknown field" in proc.stderr
    proc = _run("generate", "reversal_curse", "--out", str(tmp_path / "o"), "--config", "[1]")
    assert proc.returncode == 2 and "--config must be a JSON object" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["generate"], "icl-gen generate: error: the following arguments are required: family, --out"),
    (["generate", "nonsense", "--out", "x"], "icl-gen generate: error: argument family: invalid choice: 'nonsense'"),
    (["frobnicate"], "icl-gen: error: argument COMMAND: invalid choice: 'frobnicate'"),
    (["generate", "syllogism", "--out", "x", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
])
def test_argparse_errors_are_one_line(args: list[str], expected: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr


def test_malformed_config_json_is_one_line(tmp_path: Path) -> None:
    proc = _run("generate", "syllogism", "--out", str(tmp_path / "o"), "--config", "{not json")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--config is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_version_names_the_libraries_and_python_m_works() -> None:
    proc = subprocess.run([sys.executable, "-m", "icl_generalization", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for dist in ("icl-generalization", "lm-eval", "transformers", "torch"):
        assert dist in proc.stdout


def test_internal_error_says_so_and_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from icl_generalization import cli
    from icl_generalization.core.errors import EXIT_INTERNAL_ERROR

    def broken(args: object) -> int:
        raise RuntimeError("something the package did not expect")

    monkeypatch.setattr(cli, "_cmd_tasks_path", broken)
    assert cli.main(["tasks-path"]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "internal error (RuntimeError: something the package did not expect)" in err and "report" in err
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "tasks-path"])


def test_os_errors_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from icl_generalization import cli

    blocker = tmp_path / "file"
    blocker.write_text("mine", encoding="utf-8")
    # A folder wanted under a file: the operating system refuses, the user gets one line and exit 2.
    code = cli.main(["generate", "syllogism", "--out", str(blocker / "sub")])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert blocker.read_text(encoding="utf-8") == "mine"
