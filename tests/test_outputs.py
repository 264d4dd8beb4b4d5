"""Ownership of outputs: what the tool refuses to touch, what it may replace, one writer per output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tree_snapshot import snapshot

from icl_generalization.cli import main
from icl_generalization.core.errors import UserError
from icl_generalization.core.outputs import MARKER, claim_file, claim_folder
from icl_generalization.core.paths import TEMP_SUFFIX, is_temp_name

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def users_folder(tmp_path: Path) -> Path:
    """A folder of someone's files, the kind `--out .` might name."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.csv").write_bytes(b"a,b\n1,2\n")
    return folder


def _generate(out: Path | str, family: str = "reversal_curse") -> int:
    small = ["--config", '{"people_per_set": 4, "train_templates": 2}'] if family == "reversal_curse" else []
    return main(["generate", family, "--out", str(out), *small])


@pytest.mark.parametrize("family", ["reversal_curse", "all"])
def test_generate_refuses_a_folder_of_the_users(users_folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], family: str) -> None:
    before = snapshot(users_folder.parent)
    monkeypatch.chdir(users_folder)
    assert _generate(".", family) == 2  # `--out .`: the folder the user stands in
    assert _generate(users_folder, family) == 2
    assert snapshot(users_folder.parent) == before
    err = capsys.readouterr().err
    assert "notes.txt, sub, which icl-gen did not write" in err and "icl-gen: error:" in err


def test_hostile_out_paths_are_refused_and_left_byte_identical(tmp_path: Path, users_folder: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "link"
    link.symlink_to(users_folder)  # a link pointing outside the place the user meant
    empty_target = tmp_path / "elsewhere"
    empty_target.mkdir()
    (tmp_path / "empty-link").symlink_to(empty_target)
    before = snapshot(tmp_path)
    cases = {
        users_folder / "notes.txt": "is an existing file, and this command writes a folder",
        users_folder / "notes.txt" / "inside": "notes.txt is an existing file, so nothing can be written inside it",
        link: "is a symbolic link",
        tmp_path / "empty-link": "is a symbolic link",
    }
    for out, message in cases.items():
        assert _generate(out) == 2
        assert message in capsys.readouterr().err
    for out in (users_folder / "notes.txt", users_folder, link):  # a file output: a folder or a foreign file
        assert main(["augment", "--dataset", "reversal_curse", "--out", str(out)]) == 2
    assert main(["bench", "prefix-cache", "--out", str(users_folder / "notes.txt")]) == 2
    assert snapshot(tmp_path) == before


def test_augment_refuses_a_foreign_companion_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats = tmp_path / "corpus.stats.json"
    stats.write_text("the user's own figures")
    assert main(["augment", "--dataset", "reversal_curse", "--out", str(tmp_path / "corpus.jsonl")]) == 2
    assert "corpus.stats.json exists and icl-gen did not write it" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.stats.json"]
    assert stats.read_text() == "the user's own figures"


def test_an_output_of_another_command_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with claim_folder(tmp_path / "board", "compare", {}) as folder:
        folder.write_text("leaderboard.md", "| x |\n")
    assert _generate(tmp_path / "board") == 2
    assert "was written by `icl-gen compare`" in capsys.readouterr().err


def test_a_folder_written_earlier_is_updated_and_only_its_own_files_replaced(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert _generate(out, "semantic") == 0
    assert (out / "graph.json").is_file()
    (out / "my-notes.md").write_text("added by the user after generate")
    stray = out / f".train.jsonl.0123456789ab{TEMP_SUFFIX}"  # what a SIGKILL between write and rename leaves
    stray.write_text("half")
    assert _generate(out, "reversal_curse") == 0  # same folder, another family: no graph.json any more
    assert not (out / "graph.json").exists() and not stray.exists()
    assert (out / "my-notes.md").read_text() == "added by the user after generate"
    marker = json.loads((out / MARKER).read_text())
    assert marker["command"] == "generate" and marker["inputs"]["family"] == "reversal_curse"
    assert marker["files"] == ["README.md", "dataset.json", "test.jsonl", "train.jsonl"]
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "my-notes.md", *marker["files"]])


def test_generate_all_into_an_empty_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "all", "--out", "."]) == 0
    assert (tmp_path / MARKER).is_file() and (tmp_path / "syllogism" / "dataset.json").is_file()
    assert main(["generate", "all", "--out", "."]) == 0  # its own output: updated in place
    assert not [p for p in tmp_path.rglob("*") if is_temp_name(p.name)]


def test_one_writer_per_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    corpus = tmp_path / "corpus.jsonl"
    with claim_folder(out, "generate", {}), claim_file(corpus, "augment", {}):
        # The lock is an flock on an open file: a second claim refuses at once, in this process or another.
        with pytest.raises(UserError, match="being written by another icl-gen command"), \
                claim_folder(out, "generate", {}):
            pass
        before = snapshot(tmp_path)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for args in (["generate", "reversal_curse", "--out", str(out)],
                     ["augment", "--dataset", "reversal_curse", "--out", str(corpus)]):
            proc = subprocess.run([sys.executable, "-m", "icl_generalization.cli", *args], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 2 and "being written by another icl-gen command" in proc.stderr
            assert proc.stderr.count("\n") == 1  # one line
        assert snapshot(tmp_path) == before
    assert _generate(out) == 0  # released with the first command


def test_a_failure_keeps_what_was_there_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert _generate(out) == 0
    before = snapshot(out)
    with pytest.raises(RuntimeError), claim_folder(out, "generate", {}) as folder:
        folder.write_text("train.jsonl", "new\n")
        raise RuntimeError("stop half-way")
    # The earlier run's files are still listed as the tool's own (so a rerun may replace them), none was removed.
    assert set(json.loads((out / MARKER).read_text())["files"]) == {
        k for k in before if k != MARKER}
    assert (out / "train.jsonl").read_text() == "new\n"
    assert not [p for p in out.iterdir() if is_temp_name(p.name)]


SIGTERM_SCRIPT = """
import os, signal, sys
from pathlib import Path
from icl_generalization import cli
from icl_generalization.core.outputs import claim_folder

signal.signal(signal.SIGTERM, cli._exit_on_sigterm)  # what `icl-gen` installs first
real_replace = os.replace
def replace(src, dst):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives between the temporary's write and its rename
    real_replace(src, dst)
with claim_folder(Path(sys.argv[1]), "generate", {}) as folder:
    os.replace = replace
    folder.write_text("train.jsonl", "x\\n")
"""


def test_sigterm_removes_the_temporary(tmp_path: Path) -> None:
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(out)], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 143, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_finetune_refuses_a_foreign_run_folder_or_manifest(tmp_path: Path, users_folder: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(tmp_path)
    base = ["finetune", "--recipe", "cpu-small", "--name", "x", "--dataset", "reversal_curse", "--base", "m/m"]
    assert main([*base, "--out", str(users_folder), "--manifest", str(tmp_path / "x.yaml")]) == 2
    assert "notes.txt, sub, which icl-gen did not write" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "run"), "--manifest", str(users_folder / "notes.txt")]) == 2
    assert "notes.txt exists and icl-gen did not write it" in capsys.readouterr().err
    assert snapshot(tmp_path) == before  # the run folder it could have had was not created either


def test_a_link_placed_inside_an_output_is_never_written_through(tmp_path: Path, users_folder: Path) -> None:
    out = tmp_path / "out"
    with claim_folder(out, "compare", {}) as folder:
        folder.write_text("sub/old.txt", "old")
    (out / "sub" / "old.txt").unlink()
    (out / "sub").rmdir()
    (out / "sub").symlink_to(users_folder)  # the user swapped the tool's folder for a link to their own
    (users_folder / "old.txt").write_text("the user's, not the tool's")
    before = snapshot(users_folder)
    with claim_folder(out, "compare", {}) as folder:
        with pytest.raises(UserError, match=r"is a symbolic link .* will not write"):
            folder.write_text("sub/new.txt", "x")
        folder.write_text("top.txt", "y")
    # sub/old.txt was the tool's and is stale now, but removing it would go through the link: kept.
    assert snapshot(users_folder) == before
    assert json.loads((out / MARKER).read_text())["files"] == ["top.txt"]
