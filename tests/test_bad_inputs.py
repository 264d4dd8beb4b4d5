"""Hostile inputs through the real CLI (``python -m icl_generalization`` in a subprocess): every case asserts the
exit code, one stderr line naming the problem, no traceback, and every file that existed before byte-identical
after (a snapshot of the whole working folder, hidden files included).

Kinds: ``lost`` (a user's files put at risk by --out), ``traceback`` (malformed arguments and files),
``silent`` (a refusal due where an exit 0 would mislead), ``security`` (names and markers crafted to escape).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_fuzz_loaders import VALID_MANIFEST, VALID_RESULTS, VALID_SAMPLE
from tree_snapshot import snapshot

from icl_generalization.core.outputs import MARKER
from icl_generalization.data.load import get_dataset
from icl_generalization.data.writing import write_dataset
from icl_generalization.training.recipes import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPE = yaml.safe_load((REPO / "adapters" / "recipes" / "cpu-small.yaml").read_text())
DATE = "2024-01-01T00-00-00"


def _cli(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cache), "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "ICL_GEN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "icl_generalization", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


# --- what a case finds in its working folder -------------------------------------------------------------

def _user_files(tmp: Path) -> None:
    """Files the user owns: notes beside the output, and a folder of someone's work."""
    (tmp / "notes.txt").write_text("my notes\n")
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("\\section{mine}\n")


def _dataset(tmp: Path, family: str = "syllogism", name: str = "ds") -> Path:
    write_dataset(get_dataset(family), tmp / name)
    return tmp / name


def _results(tmp: Path, name: str = "run", edit: Callable[[dict[str, object]], None] | None = None,
             samples: bool = True) -> Path:
    data = json.loads(json.dumps(VALID_RESULTS))
    if edit:
        edit(data)
    (tmp / name).mkdir()
    (tmp / name / f"results_{DATE}.json").write_text(json.dumps(data))
    if samples:
        lines = [{**VALID_SAMPLE, "doc_id": i, "doc": {**VALID_SAMPLE["doc"], "id": str(i)}} for i in range(2)]
        (tmp / name / f"samples_t_{DATE}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp / name


def _set(path: str, value: object) -> Callable[[dict[str, object]], None]:
    """An edit of the results JSON at a dotted path."""
    def edit(data: dict[str, object]) -> None:
        *parents, last = path.split(".")
        node: object = data
        for key in parents:
            assert isinstance(node, dict)
            node = node[key]
        assert isinstance(node, dict)
        node[last] = value
    return edit


def _recipe(tmp: Path, **changes: object) -> str:
    (tmp / "r.yaml").write_text(yaml.safe_dump({**RECIPE, **changes}))
    return "r.yaml"


def _text(tmp: Path, name: str, text: str) -> str:
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_text(text)
    return name


def _folder(tmp: Path, name: str) -> str:
    (tmp / name).mkdir()
    return name


def _link(tmp: Path, name: str, to: str) -> str:
    (tmp / to).mkdir(exist_ok=True)
    (tmp / name).symlink_to(tmp / to)
    return name


def _checkpoint(tmp: Path, tamper: str) -> str:
    """A checkpoint folder and its manifest, then one tampering: a changed weight or an unlisted file."""
    folder = tmp / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "adapter_config.json").write_text("{}")
    from icl_generalization.core.digest import sha256_file
    from icl_generalization.weights.manifest import combined_sha256

    files = {p.name: sha256_file(p) for p in folder.iterdir()}
    # No recorded base config: the check of the folder itself is what refuses.
    manifest = {**VALID_MANIFEST, "base": {"name": "smollm2-135m", "config_sha256": None, "revision": None},
                "adapter": {"path": str(folder), "files": files, "sha256": combined_sha256(files)}}
    (tmp / "m.yaml").write_text(yaml.safe_dump(manifest))
    if tamper == "weights":
        (folder / "adapter_model.safetensors").write_bytes(b"other weights")
    else:
        (folder / "extra.bin").write_bytes(b"pickle")
    return "m.yaml"


def _foreign_marker(tmp: Path, name: str, command: str = "compare", files: tuple[str, ...] = ()) -> str:
    (tmp / name).mkdir()
    (tmp / name / MARKER).write_text(json.dumps({"tool": "icl-gen", "command": command, "version": "0",
                                                 "inputs": {}, "files": list(files)}))
    return name


@dataclass(frozen=True)
class Case:
    kind: str
    args: Callable[[Path], list[str]]
    expected: str  # a fragment of the one stderr line (of the report on stdout, for `check`)
    code: int = 2
    # `eval` hands over to lm-eval, whose own log lines come first on stderr; the package's line is the last.
    lm_eval_logs: bool = False
    # A known defect, reported: the case fails today (strict xfail, so a fix makes it pass loudly).
    defect: str = ""


def _gen(out: str, family: str = "syllogism") -> list[str]:
    return ["generate", family, "--out", out]


def _aug(out: str) -> list[str]:
    return ["augment", "--dataset", "syllogism", "--out", out]


def _ft(tmp: Path, *extra: str) -> list[str]:
    return ["finetune", "--recipe", "cpu-small", "--name", "n", *extra]


def _cmp(tmp: Path, *extra: str, edit: Callable[[dict[str, object]], None] | None = None) -> list[str]:
    return ["compare", str(_results(tmp, edit=edit)), *extra]


def _chk(tmp: Path, *extra: str) -> list[str]:
    return ["check", "--baseline", str(_results(tmp, "base")), "--candidate", str(_results(tmp, "cand")), *extra]


def _corrupt(tmp: Path, family: str, name: str, text: str | bytes) -> list[str]:
    folder = _dataset(tmp, family)
    (folder / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return ["check-data", "ds"]


CASES: dict[str, Case] = {
    # lost user data: each of these would have deleted, truncated or replaced a file the tool did not write
    "generate --out . among user files": Case("lost", lambda t: _gen("."), "which icl-gen did not write"),
    "generate all --out .": Case("lost", lambda t: _gen(".", "all"), "which icl-gen did not write"),
    "generate --out a folder of someone's files": Case("lost", lambda t: _gen("mine"), "thesis.tex"),
    "generate --out an existing file": Case("lost", lambda t: _gen("notes.txt"), "notes.txt"),
    "generate --out inside a file": Case("lost", lambda t: _gen("notes.txt/sub"), "notes.txt"),
    "generate --out a symlink to an empty folder": Case("lost", lambda t: _gen(_link(t, "ln", "empty")),
                                                        "symbolic link"),
    "generate --out a symlink to someone's folder": Case("lost", lambda t: _gen(_link(t, "ln", "mine")),
                                                         "symbolic link"),
    "generate --out a compare output": Case("lost", lambda t: _gen(_foreign_marker(t, "board")),
                                            "icl-gen compare"),
    "augment --out notes.txt": Case("lost", lambda t: _aug("notes.txt"), "notes.txt exists and icl-gen did not"),
    "augment --out a folder": Case("lost", lambda t: _aug("mine"), "is an existing folder"),
    "augment --out beside a foreign stats file": Case(
        "lost", lambda t: _aug(_text(t, "c.stats.json", "{}").replace(".stats.json", ".jsonl")), "c.stats.json"),
    "augment --out a symlink": Case("lost", lambda t: _aug(_link(t, "c.jsonl", "mine")), "symbolic link"),
    "augment --out a file inside a file": Case("lost", lambda t: _aug("notes.txt/c.jsonl"), "notes.txt"),
    "finetune --out someone's folder": Case("lost", lambda t: _ft(t, "--out", "mine", "--manifest", "m.yaml"),
                                            "thesis.tex"),
    "finetune --manifest an existing file": Case("lost", lambda t: _ft(t, "--out", "run", "--manifest",
                                                                       "notes.txt"), "notes.txt"),
    "finetune --manifest a folder": Case("lost", lambda t: _ft(t, "--out", "run", "--manifest", "mine"),
                                         "is an existing folder"),
    "finetune --out an existing file": Case("lost", lambda t: _ft(t, "--out", "notes.txt", "--manifest", "m.yaml"),
                                            "notes.txt"),
    "compare --out .": Case("lost", lambda t: _cmp(t, "--out", "."), "which icl-gen did not write"),
    "compare --out an existing file": Case("lost", lambda t: _cmp(t, "--out", "notes.txt"), "notes.txt"),
    "compare --out someone's folder": Case("lost", lambda t: _cmp(t, "--out", "mine"), "thesis.tex"),
    "compare --out a generate output": Case("lost", lambda t: _cmp(t, "--out", _foreign_marker(t, "g", "generate")),
                                            "icl-gen generate"),
    "check --out an existing file": Case("lost", lambda t: _chk(t, "--out", "notes.txt"), "notes.txt"),
    "check --out someone's folder": Case("lost", lambda t: _chk(t, "--out", "mine"), "thesis.tex"),
    "bench --out an existing file": Case("lost", lambda t: ["bench", "prefix-cache", "--out", "notes.txt"],
                                         "notes.txt"),
    "bench --out a folder": Case("lost", lambda t: ["bench", "prefix-cache", "--out", "mine"], "existing folder"),
    "reproduce --out an existing file": Case("lost", lambda t: ["reproduce", "--preset", "smoke", "--out",
                                                                "notes.txt"], "notes.txt"),
    # tracebacks: malformed arguments and files
    "generate --config malformed JSON": Case("traceback", lambda t: [*_gen("o"), "--config", "{not json"],
                                             "--config is not valid JSON"),
    "generate --config a list": Case("traceback", lambda t: [*_gen("o"), "--config", "[1]"],
                                     "must be a JSON object"),
    "generate --config a string for a number": Case("traceback", lambda t: [*_gen("o"), "--config",
                                                                            '{"n_items": "many"}'], "n_items"),
    "generate --config a negative count": Case("traceback", lambda t: [*_gen("o"), "--config", '{"n_items": -3}'],
                                               "n_items"),
    "generate --config NaN": Case("traceback", lambda t: [*_gen("o"), "--config", '{"n_items": NaN}'], "n_items"),
    "generate --source an empty Berglund folder": Case(
        "traceback", lambda t: [*_gen("o", "reversal_curse"), "--source", f"berglund:{_folder(t, 'b')}"],
        "missing"),
    "generate --source a missing folder": Case("traceback", lambda t: [*_gen("o", "reversal_curse"), "--source",
                                                                        "berglund:nowhere"], "nowhere"),
    "generate --source an unknown kind": Case("traceback", lambda t: [*_gen("o", "reversal_curse"), "--source",
                                                                       "zip:x"], "zip:x"),
    "check-data a corrupted graph.json": Case("traceback", lambda t: _corrupt(t, "semantic", "graph.json", "{"),
                                              "graph.json"),
    "check-data a truncated test.jsonl": Case("traceback", lambda t: _corrupt(t, "syllogism", "test.jsonl",
                                                                              '{"id": "x", "pro'), "test.jsonl"),
    "check-data a test item of the wrong type": Case("traceback", lambda t: _corrupt(
        t, "syllogism", "test.jsonl", '{"id": "x", "split": "s", "prompt": 5, "choices": [], "gold": 0}\n'),
        "test.jsonl"),
    "check-data dataset.json not JSON": Case("traceback", lambda t: _corrupt(t, "syllogism", "dataset.json", "{"),
                                             "dataset.json"),
    "check-data dataset.json a list": Case("traceback", lambda t: _corrupt(t, "syllogism", "dataset.json", "[]"),
                                           "dataset.json"),
    "check-data dataset.json seed a string": Case("traceback", lambda t: _corrupt(
        t, "syllogism", "dataset.json", '{"family": "syllogism", "generator_version": "1", "seed": "x"}'), "seed"),
    "check-data dataset.json not UTF-8": Case("traceback", lambda t: _corrupt(t, "syllogism", "dataset.json",
                                                                              b"\xff{}"), "dataset.json"),
    "check-data an edited train.jsonl": Case("traceback", lambda t: _corrupt(t, "syllogism", "train.jsonl", ""),
                                             "fingerprint mismatch"),
    "check-data a file": Case("traceback", lambda t: ["check-data", "notes.txt"], "no dataset folder"),
    "check-data an empty folder": Case("traceback", lambda t: ["check-data", _folder(t, "empty")],
                                       "no dataset folder"),
    "compare a results JSON of the wrong shape": Case("traceback", lambda t: _cmp(t, edit=_set("results", [1])),
                                                      "results"),
    "compare a NaN accuracy": Case("traceback", lambda t: _cmp(t, edit=_set("results.t.acc,none", float("nan"))),
                                   "acc,none"),
    "compare an accuracy of 1.7": Case("traceback", lambda t: _cmp(t, edit=_set("results.t.acc,none", 1.7)),
                                       "acc,none"),
    "compare an accuracy as a string": Case("traceback", lambda t: _cmp(t, edit=_set("results.t.acc,none", "0.5")),
                                            "acc,none"),
    "compare a missing path": Case("traceback", lambda t: ["compare", "nowhere"], "does not exist"),
    "compare a folder without results": Case("traceback", lambda t: ["compare", "mine"], "no lm-eval results file"),
    "check a NaN item score": Case("traceback", lambda t: _nan_sample(t), "acc"),
    "finetune target_modules: 5": Case("traceback", lambda t: ["finetune", "--recipe", _recipe(t, target_modules=5),
                                                               "--name", "n"], "target_modules"),
    "finetune seed: x": Case("traceback", lambda t: ["finetune", "--recipe", _recipe(t, seed="x"), "--name", "n"],
                             "seed"),
    "finetune a recipe with an impossible date": Case(
        "traceback", lambda t: ["finetune", "--recipe", _text(t, "r.yaml", "seed: 2001-13-14\n"), "--name", "n"],
        "not valid YAML"),
    "finetune an unknown recipe": Case("traceback", lambda t: ["finetune", "--recipe", "nope", "--name", "n"],
                                       "unknown recipe 'nope'"),
    "finetune a corpus without text": Case("traceback", lambda t: _ft(
        t, "--augmented", _text(t, "c.jsonl", '{"txt": 1}\n'), "--out", "run", "--manifest", "m.yaml"), "'text'"),
    "lexicon audit a folder without a tokenizer": Case("traceback", lambda t: ["lexicon", "audit", "--model",
                                                                               "mine"], "mine"),
    "eval a checkpoint with a changed weight": Case("traceback", lambda t: [
        "eval", "--model", "icl-gen", "--model_args", f"checkpoint={_checkpoint(t, 'weights')}", "--tasks",
        "icl_gen_syllogism_conclusion", "--limit", "1"], "sha256", lm_eval_logs=True),
    "eval a checkpoint with an unlisted file": Case("traceback", lambda t: [
        "eval", "--model", "icl-gen", "--model_args", f"checkpoint={_checkpoint(t, 'unlisted')}", "--tasks",
        "icl_gen_syllogism_conclusion", "--limit", "1"], "extra.bin", lm_eval_logs=True),
    "eval --metadata context_budget=abc": Case("traceback", lambda t: [
        "eval", "--model", "dummy", "--tasks", "icl_gen_syllogism_conclusion_icl", "--limit", "1", "--metadata",
        '{"context_budget": "abc"}'], "context_budget", lm_eval_logs=True),
    "reproduce an unknown preset": Case("traceback", lambda t: ["reproduce", "--preset", "nope", "--out", "r"],
                                        "nope"),
    "reproduce an unknown family": Case("traceback", lambda t: ["reproduce", "--preset", "smoke", "--families",
                                                                "nope", "--out", "r"], "nope"),
    # silent exits: a verdict that could not be reached must not read as a pass
    "check the same file both sides": Case("silent", lambda t: ["check", "--baseline", str(_results(t)),
                                                                "--candidate", "run"], "same run"),
    "check without samples": Case("silent", lambda t: ["check", "--baseline", str(_results(t, samples=False)),
                                                       "--candidate", str(_results(t, "cand"))], "samples"),
    "check a task missing from the candidate": Case("silent", lambda t: [
        "check", "--baseline", str(_results(t)), "--candidate",
        str(_results(t, "cand", edit=_set("results", {})))], "did not score"),
    "check-data a folder holding no dataset": Case("silent", lambda t: ["check-data", "mine"], "no dataset folder"),
    "eval a task that does not exist": Case("silent", lambda t: ["eval", "--model", "dummy", "--tasks",
                                                                 "icl_gen_nope", "--limit", "1"], "icl_gen_nope",
                                             lm_eval_logs=True),
    "compare results with none of the package's tasks": Case("silent", lambda t: _cmp(
        t, edit=_set("configs", {"t": {}})), "nothing to compare"),
}


def _nan_sample(tmp: Path) -> list[str]:
    base, cand = _results(tmp, "base"), _results(tmp, "cand")
    samples = cand / f"samples_t_{DATE}.jsonl"
    samples.write_text(samples.read_text().replace('"acc": 1.0', '"acc": NaN', 1))
    return ["check", "--baseline", str(base), "--candidate", str(cand)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case.defect))
                                  if case.defect else name for name, case in CASES.items()])
def test_refused_with_one_line_and_nothing_touched(name: str, tmp_path: Path, cache: Path) -> None:
    case = CASES[name]
    _user_files(tmp_path)
    args = case.args(tmp_path)
    before = snapshot(tmp_path)
    proc = _cli(tmp_path, cache, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == case.code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    # `check`: a verdict it cannot reach is one line on stderr; its report on stdout lists every reason.
    if args[0] == "check" and "CANNOT JUDGE" in proc.stdout:
        assert len(lines) == 1 and "CANNOT JUDGE" in lines[0], proc.stderr
        assert case.expected in proc.stdout, proc.stdout
    elif case.lm_eval_logs:
        assert [line for line in lines if line.startswith("icl-gen")] == lines[-1:], proc.stderr[-2000:]
        assert case.expected in lines[-1], lines[-1]
    else:
        assert len(lines) == 1 and case.expected in lines[0], proc.stderr[-2000:]
    assert snapshot(tmp_path) == before


def test_count_of_cases_per_kind() -> None:
    kinds = [case.kind for case in CASES.values()]
    assert {kind: kinds.count(kind) for kind in ("lost", "traceback", "silent")} == {
        "lost": 26, "traceback": 36, "silent": 6}


def test_a_recipe_with_learning_rate_1e_3_works(tmp_path: Path) -> None:
    # PyYAML reads `1e-3` (no dot) as a string; the recipe must still read it as the number.
    assert load_recipe(str(tmp_path / _recipe(tmp_path, learning_rate="1e-3"))).learning_rate == 0.001
    (tmp_path / "r2.yaml").write_text((tmp_path / "r.yaml").read_text().replace("'1e-3'", "1e-3"))
    assert load_recipe(str(tmp_path / "r2.yaml")).learning_rate == 0.001


# --- security: crafted names and markers ---------------------------------------------------------------

def _hostile_results(tmp: Path) -> Path:
    def edit(data: dict[str, object]) -> None:
        _set("configs.t.metadata.provenance.family", "../../escaped")(data)
        _set("configs.t.metadata.provenance.split", "<script>alert(1)</script>")(data)
        _set("config.model_args", {"pretrained": '=HYPERLINK("http://evil.example")'})(data)
    return _results(tmp, edit=edit)


def test_names_from_results_stay_inside_compare_out_and_inert(tmp_path: Path, cache: Path) -> None:
    _user_files(tmp_path)
    run = _hostile_results(tmp_path)
    before = snapshot(tmp_path)
    proc = _cli(tmp_path, cache, "compare", str(run), "--out", "board")
    assert proc.returncode == 0, proc.stderr
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("board")} == before  # nothing outside --out
    assert sorted(p.name for p in (tmp_path / "board").iterdir()) == [
        MARKER, "escaped.png", "leaderboard.csv", "leaderboard.html", "leaderboard.json", "leaderboard.md",
        "orderings.csv"]
    csv_text = (tmp_path / "board" / "leaderboard.csv").read_text()
    assert '\'=HYPERLINK' in csv_text and "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text
    orderings = (tmp_path / "board" / "orderings.csv").read_text()
    assert "\n=HYPERLINK" not in orderings and ",=HYPERLINK" not in orderings
    for page in ("leaderboard.md", "leaderboard.html"):
        assert "<script>" not in (tmp_path / "board" / page).read_text()
    assert "<script>" not in proc.stdout


@pytest.mark.parametrize("listed", ["../notes.txt", "{tmp}/notes.txt", ".", "../mine/thesis.tex"])
def test_an_edited_marker_cannot_make_generate_remove_outside_its_output(listed: str, tmp_path: Path,
                                                                         cache: Path) -> None:
    _user_files(tmp_path)
    _foreign_marker(tmp_path, "o", "generate", (listed.format(tmp=tmp_path),))
    before = snapshot(tmp_path)
    proc = _cli(tmp_path, cache, *_gen("o"))
    assert proc.returncode == 0, proc.stderr
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("o/")} == {k: v for k, v in before.items()
                                                                          if not k.startswith("o/")}


def test_a_link_placed_inside_an_output_is_not_written_through(tmp_path: Path, cache: Path) -> None:
    _user_files(tmp_path)
    assert _cli(tmp_path, cache, *_gen("o")).returncode == 0
    (tmp_path / "o" / "train.jsonl").unlink()
    (tmp_path / "o" / "train.jsonl").symlink_to(tmp_path / "notes.txt")
    shutil.copy(tmp_path / "notes.txt", tmp_path / "notes.bak")
    proc = _cli(tmp_path, cache, *_gen("o"))
    assert (tmp_path / "notes.txt").read_bytes() == (tmp_path / "notes.bak").read_bytes()
    assert "Traceback" not in proc.stderr
