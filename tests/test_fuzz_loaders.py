"""Every file loader, fed random bytes, random JSON, random YAML and valid files with one field replaced by
random JSON: it returns or raises UserError (DataError is one), never any other exception. Another exception
would reach the CLI's handler as an "internal error" (exit 70) instead of one line naming the file (exit 2).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from icl_generalization.analysis.results import load_run, read_samples
from icl_generalization.core.errors import UserError
from icl_generalization.core.outputs import MARKER, check_output
from icl_generalization.data.checkers import check_dataset
from icl_generalization.data.families.reversal_curse.berglund import import_berglund
from icl_generalization.data.load import get_dataset
from icl_generalization.data.records import GRAPH_FILE, META_FILE, TEST_FILE, TRAIN_FILE, read_dataset
from icl_generalization.data.writing import write_dataset
from icl_generalization.study.presets import get_preset
from icl_generalization.study.reproduce import MARKER as STAGE_MARKER
from icl_generalization.study.reproduce import plan_stages, run_key, run_reproduce
from icl_generalization.training.corpus import read_corpus
from icl_generalization.training.recipes import load_recipe
from icl_generalization.weights.manifest import read_manifest

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# PyYAML reads an impossible date as a timestamp and raises ValueError, outside yaml.YAMLError.
YAML_TRAPS = ["when: 2001-13-14", "- &a [*a]", "x: !!binary x", "x: !!python/name:os.system", "a: b: c", "\t"]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity included, as json.loads accepts them


def _yaml(value: Any) -> bytes:
    return yaml.safe_dump(value).encode()


def _payloads(valid: Any) -> st.SearchStrategy[bytes]:
    """Random bytes, JSON, YAML, and ``valid`` (a JSON object) with one top-level or nested field replaced."""
    return st.one_of(st.binary(max_size=200), JSON_VALUES.map(_json), JSON_VALUES.map(_yaml),
                     st.sampled_from(YAML_TRAPS).map(str.encode), _mutated(valid).map(_json))


def _mutated(valid: Any) -> st.SearchStrategy[Any]:
    if not isinstance(valid, dict) or not valid:
        return JSON_VALUES
    keys = sorted(valid)

    @st.composite
    def one_field(draw: st.DrawFn) -> Any:
        key = draw(st.sampled_from(keys))
        value = draw(_mutated(valid[key]) if isinstance(valid[key], dict) and draw(st.booleans()) else JSON_VALUES)
        return {**valid, key: value}

    return one_field()


def _returns_or_refuses(load: Callable[[], object]) -> None:
    try:
        load()
    except UserError as exc:
        assert str(exc).strip(), "a refusal must say something"


@contextmanager
def _copy_of(folder: Path) -> Iterator[Path]:
    # Hypothesis runs many examples inside one test call: each gets its own copy, not pytest's tmp_path.
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(shutil.copytree(folder, Path(tmp) / folder.name, symlinks=True))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    folders = {}
    for family in ("syllogism", "semantic"):
        write_dataset(get_dataset(family), root / family)
        folders[family] = root / family
    return folders


def _first_line(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8").splitlines()[0])


@FUZZ
@given(data=st.data(), name=st.sampled_from([TRAIN_FILE, TEST_FILE, META_FILE]))
def test_dataset_folder_files(datasets: dict[str, Path], data: st.DataObject, name: str) -> None:
    with _copy_of(datasets["syllogism"]) as folder:
        valid = json.loads((folder / name).read_text()) if name == META_FILE else _first_line(folder / name)
        payload = data.draw(_payloads(valid))
        if name != META_FILE and data.draw(st.booleans()):
            payload = payload + b"\n" + (folder / name).read_bytes()  # one bad record before good ones
        (folder / name).write_bytes(payload)
        _returns_or_refuses(lambda: check_dataset(read_dataset(folder)))


@FUZZ
@given(data=st.data())
def test_graph_json_through_the_checker(datasets: dict[str, Path], data: st.DataObject) -> None:
    with _copy_of(datasets["semantic"]) as folder:
        payload = data.draw(_payloads(json.loads((folder / GRAPH_FILE).read_text())))
        (folder / GRAPH_FILE).write_bytes(payload)
        # Without a recorded fingerprint the edited graph reaches the checker instead of the fingerprint check.
        meta = json.loads((folder / META_FILE).read_text())
        del meta["fingerprint"]
        (folder / META_FILE).write_text(json.dumps(meta))
        _returns_or_refuses(lambda: check_dataset(read_dataset(folder)))


VALID_RESULTS: dict[str, Any] = {
    "results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1, "sample_len": 2}},
    "configs": {"t": {"metadata": {"version": 1, "provenance": {"family": "syllogism", "split": "conclusion",
                                                                "condition": "closed_book", "fingerprint": "f",
                                                                "chance": 0.25, "n_items": 2}},
                      "dataset_kwargs": {"family": "syllogism"}}},
    "versions": {"t": 1}, "n-samples": {"t": {"original": 2, "effective": 2}},
    "config": {"model": "hf", "model_args": "pretrained=m"}, "date": 1.0,
}
VALID_SAMPLE: dict[str, Any] = {"doc_id": 0, "doc": {"id": "a", "choices": ["x", "y"], "gold": 0, "fingerprint": "f"},
                "target": "0", "filter": "none", "metrics": ["acc"], "acc": 1.0, "doc_hash": "d",
                "prompt_hash": "p", "target_hash": "t", "arguments": {"gen_args_0": {}}}


@FUZZ
@given(payload=_payloads(VALID_RESULTS))
@example(payload=_json({**VALID_RESULTS, "config": {"model": "hf", "model_args": "no-equals-sign"}}))
def test_results_json(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results_2024-01-01T00-00-00.json"
        path.write_bytes(payload)
        _returns_or_refuses(lambda: load_run(path))


@FUZZ
@given(payload=_payloads(VALID_SAMPLE))
def test_sample_jsonl(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples_t_2024.jsonl"
        path.write_bytes(payload.replace(b"\n", b" ") + b"\n" + _json(VALID_SAMPLE))
        _returns_or_refuses(lambda: read_samples(path))


VALID_MANIFEST = {
    "manifest_version": 2, "name": "m", "kind": "ft", "method": "lora",
    "base": {"name": "smollm2-135m", "config_sha256": "3" * 64, "revision": None},
    "adapter": {"path": "adapter", "sha256": "0" * 64, "files": {"adapter_model.safetensors": "2" * 64}},
    "training_data": {"family": "reversal_curse", "data_seed": 0, "data_config": {}, "fingerprint": "4" * 64,
                      "documents": 4, "augmented_corpus": None, "augmented_corpus_sha256": None,
                      "augmented_lines": 0, "examples": 4, "examples_sha256": "5" * 64, "split": "none",
                      "truncated_examples": 0},
    "recipe": {}, "steps": 4, "final_loss": 1.5, "mean_loss": 2.0, "training_seconds": 3.0,
    "resumed_from_step": None, "processes": 1, "bf16": False, "device": "cpu",
}


@FUZZ
@given(payload=_payloads(VALID_MANIFEST) | _mutated(VALID_MANIFEST).map(_yaml))
@example(payload=b"manifest_version: 2\nname: 2001-13-14\n")
def test_checkpoint_manifest(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_bytes(payload)
        _returns_or_refuses(lambda: read_manifest(path))


VALID_RECIPE = yaml.safe_load((Path(__file__).parents[1] / "adapters" / "recipes" / "cpu-small.yaml").read_text())


@FUZZ
@given(payload=_payloads(VALID_RECIPE) | _mutated(VALID_RECIPE).map(_yaml))
@example(payload=b"method: lora\nlearning_rate: 2001-13-14\n")
def test_recipe(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.yaml"
        path.write_bytes(payload)
        _returns_or_refuses(lambda: load_recipe(str(path)))


@FUZZ
@given(payload=_payloads({"text": "Q: a? A: b", "source_id": "d1", "mode": "local", "dropped": False}))
def test_augmentation_corpus(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        path.write_bytes(payload)
        _returns_or_refuses(lambda: read_corpus(path))


VALID_MARKER = {"tool": "icl-gen", "command": "generate", "version": "1", "inputs": {}, "files": ["a.txt"]}


@FUZZ
@given(payload=_payloads(VALID_MARKER), kind=st.sampled_from(["folder", "file"]))
def test_output_markers(payload: bytes, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "out"
        folder.mkdir()
        target = folder if kind == "folder" else Path(tmp) / "a.txt"
        marker = folder / MARKER if kind == "folder" else Path(tmp) / f".a.txt{MARKER}"
        marker.write_bytes(payload)
        (folder / "a.txt").write_text("written earlier")
        _returns_or_refuses(lambda: check_output(target, "generate", "folder" if kind == "folder" else "file"))


@pytest.fixture(scope="module")
def stage_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """A reproduce folder whose first stage (the smoke preset's data stage) has finished, with its marker."""
    out = tmp_path_factory.mktemp("reproduce") / "run"
    preset = get_preset("smoke")
    key = run_key("smollm2-135m", preset)  # hashes the model's weights: once, not per example
    stages = plan_stages("smollm2-135m", preset, out, [next(iter(preset.families))], key)
    (out / stages[0].name).mkdir(parents=True)
    (out / stages[0].name / STAGE_MARKER).write_text(json.dumps({"stage": stages[0].name, "key": stages[0].key}))
    return out, stages[0].name, key


@FUZZ
@given(data=st.data())
def test_reproduce_stage_markers(stage_folder: tuple[Path, str, dict[str, Any]], data: st.DataObject) -> None:
    template, stage, key = stage_folder
    with _copy_of(template) as out:
        marker = out / stage / STAGE_MARKER
        marker.write_bytes(data.draw(_payloads(json.loads(marker.read_text()))))
        preset = get_preset("smoke")
        # Only the resume check runs: stubs in place of the stages and the weights digest keep it off the model.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("icl_generalization.study.reproduce.run_key", lambda *args: key)
            mp.setattr("icl_generalization.study.reproduce._run_stages", lambda *args: [])
            _returns_or_refuses(lambda: run_reproduce("smollm2-135m", preset, out, [next(iter(preset.families))]))


def _berglund_copy(root: Path) -> None:
    """A tiny complete copy of Berglund et al.'s layout: four people, one template per file."""
    names = ["Ada Quill", "Bo Rennet", "Cy Marlow", "Di Vesper"]
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "names.txt").write_text("\n".join(names) + "\n")
    data = root / "june_version_1"
    data.mkdir()
    files = ["p2d_prompts_train.jsonl", "d2p_prompts_train.jsonl", "both_prompts_train.jsonl",
             "p2d_reverse_prompts_test.jsonl", "p2d_prompts_test.jsonl", "d2p_prompts_test.jsonl",
             "d2p_reverse_prompts_test.jsonl"]
    for name in files:
        rows = [{"prompt": f"Who is {person}?", "completion": f" the keeper of lamp {i}"}
                for i, person in enumerate(names)]
        (data / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def berglund(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("berglund") / "reverse_experiments"
    _berglund_copy(root)
    import_berglund(root)  # the untouched copy imports
    return root


@FUZZ
@given(data=st.data(), name=st.sampled_from(["templates/names.txt", "june_version_1/p2d_prompts_train.jsonl",
                                             "june_version_1/d2p_reverse_prompts_test.jsonl"]))
def test_berglund_import_files(berglund: Path, data: st.DataObject, name: str) -> None:
    with _copy_of(berglund) as root:
        payload = data.draw(_payloads({"prompt": "Who is Ada Quill?", "completion": " the keeper of lamp 0"}))
        (root / name).write_bytes(payload)
        _returns_or_refuses(lambda: import_berglund(root))
