"""The checkpoint manifest: parsed once into a typed record; every problem one line naming file, field, value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from icl_generalization.core.errors import UserError
from icl_generalization.weights.manifest import Manifest, combined_sha256, read_manifest

FILES = {"adapter_config.json": "1" * 64, "adapter_model.safetensors": "2" * 64}


def _valid() -> dict[str, Any]:
    return {
        "manifest_version": 2, "name": "m", "kind": "ft", "method": "lora",
        "base": {"name": "smollm2-135m", "config_sha256": "3" * 64, "revision": None},
        "adapter": {"path": "adapter", "sha256": combined_sha256(FILES), "files": dict(FILES)},
        "training_data": {"family": "reversal_curse", "data_seed": 0, "data_config": {"people_per_set": 4},
                          "fingerprint": "4" * 64, "documents": 4, "augmented_corpus": None,
                          "augmented_corpus_sha256": None, "augmented_lines": 0, "examples": 4,
                          "examples_sha256": "5" * 64, "split": "none", "truncated_examples": 0},
        "recipe": {"method": "lora", "learning_rate": 0.001}, "steps": 4, "final_loss": 1.5, "mean_loss": 2.0,
        "training_seconds": 3.0, "resumed_from_step": None, "processes": 1, "bf16": False, "device": "cpu",
    }


def _write(tmp: Path, data: Any) -> Path:
    path = tmp / "m.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(UserError) as refused:
        read_manifest(path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_a_valid_manifest_is_typed_and_parsed_once(tmp_path: Path) -> None:
    path = _write(tmp_path, _valid())
    manifest = read_manifest(path)
    assert isinstance(manifest, Manifest) and manifest.base.name == "smollm2-135m"
    assert manifest.training_data.data_config == {"people_per_set": 4}
    assert read_manifest(path) is manifest  # the same text is not parsed again
    changed = _valid() | {"steps": 5}
    _write(tmp_path, changed)
    assert read_manifest(path).steps == 5  # an edited file is


def test_yaml_numbers_and_numeric_strings_read_as_the_fields_expect(tmp_path: Path) -> None:
    data = _valid()
    data["base"]["revision"] = 1.0  # YAML reads `revision: 1.0` as a number
    text = yaml.safe_dump(data).replace("name: m\n", "name: 2024\n").replace("steps: 4", "steps: '4'")
    # PyYAML (YAML 1.1) leaves `1e-3` a string; the float field still reads it as a number.
    text = text.replace("final_loss: 1.5", "final_loss: 1e-3")
    manifest = read_manifest(_write(tmp_path, text))
    assert (manifest.name, manifest.base.revision, manifest.steps, manifest.final_loss) == ("2024", "1.0", 4, 1e-3)


def test_a_version_1_manifest_is_refused_with_the_fix(tmp_path: Path) -> None:
    message = _refusal(_write(tmp_path, _valid() | {"manifest_version": 1}))
    assert "version 1" in message and "icl-gen finetune" in message


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = _valid()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("data, expected", [
    ("name: [unclosed\n", "not valid YAML"),
    ("just a string\n", "not a YAML mapping"),
    ({k: v for k, v in _valid().items() if k != "adapter"}, "adapter: missing"),
    (_valid() | {"kind": "pretrained"}, "kind: expected 'ft' or 'aug_ft' (got 'pretrained')"),
    (_valid() | {"manifest_version": 3}, "manifest_version: expected 2 (got 3)"),
    (_valid() | {"stpes": 4}, "stpes: unknown field"),
    (_with(("base", "config_sha256"), "abc"), "base.config_sha256: string should match pattern"),
    (_with(("adapter", "files"), {"../escape.safetensors": "1" * 64}), "no path separators"),
    (_with(("adapter", "files"), {"adapter_config.json": "1" * 64}), "expected a weights file"),
    (_with(("adapter", "sha256"), "6" * 64), "adapter.sha256: expected"),
    (_with(("steps",), "many"), "steps: expected a valid integer, unable to parse string as an integer"),
])
def test_a_corrupt_manifest_is_one_line_naming_the_field(tmp_path: Path, data: Any, expected: str) -> None:
    assert expected in _refusal(_write(tmp_path, data))


def test_an_unreadable_manifest(tmp_path: Path) -> None:
    assert "cannot read" in _refusal(tmp_path / "absent.yaml")
