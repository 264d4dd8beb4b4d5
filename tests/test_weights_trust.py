"""Hostile checkpoints: every file of a checkpoint is verified before anything loads, and what loads is a
private copy of the verified bytes. Each refusal is one line that names the offending file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from icl_generalization.core.errors import UserError
from icl_generalization.weights.base import base_identity
from icl_generalization.weights.loading import Checkpoint, apply_adapter, open_checkpoint
from icl_generalization.weights.manifest import (
    MANIFEST_VERSION,
    FilesRecord,
    Manifest,
    TrainingData,
    combined_sha256,
    write_manifest,
)
from icl_generalization.weights.verify import digest_folder

INPUT = [[11, 23, 500, 900, 12, 3000]]


@pytest.fixture(scope="module")
def adapter_source(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """A LoRA adapter of the tiny model that is not the identity (init_lora_weights=False)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                           init_lora_weights=False))
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    lora.save_pretrained(folder)
    return folder


def _manifest(folder: Path, path: Path, base: str, allow_pickle: bool = False) -> Path:
    """Write a manifest for ``folder`` the way ``icl-gen finetune`` does: every file listed."""
    files = digest_folder(folder)
    data = TrainingData(family="reversal_curse", data_seed=0, data_config={}, fingerprint="a" * 64, documents=4,
                        augmented_corpus=None, augmented_corpus_sha256=None, augmented_lines=0, examples=4,
                        examples_sha256="b" * 64, split="none", truncated_examples=0)
    manifest = Manifest(manifest_version=MANIFEST_VERSION, name="trust", kind="ft", method="lora",
                        base=base_identity(base),
                        adapter=FilesRecord(path=folder.name, sha256=combined_sha256(files), files=files,
                                            allow_pickle=allow_pickle),
                        training_data=data, recipe={"method": "lora"}, steps=1, final_loss=1.0, mean_loss=1.0,
                        training_seconds=0.1, resumed_from_step=None, processes=1, bf16=False, device="cpu")
    write_manifest(path, manifest)
    return path


@pytest.fixture()
def checkpoint(tmp_path: Path, adapter_source: Path, tiny_model_path: Path) -> tuple[Path, Path]:
    """A private copy (manifest, adapter folder) that a test may damage."""
    folder = tmp_path / "adapter"
    shutil.copytree(adapter_source, folder)
    return _manifest(folder, tmp_path / "trust.yaml", str(tiny_model_path)), folder


def _open(target: Path, **kwargs: Any) -> Checkpoint:
    with open_checkpoint(str(target), **kwargs) as opened:
        return opened


def _refused(target: Path, names: str, **kwargs: Any) -> str:
    """The one-line refusal of opening ``target``; it must name the file ``names``."""
    with pytest.raises(UserError) as refused:
        _open(target, **kwargs)
    message = str(refused.value)
    assert "\n" not in message and names in message, message
    return message


def _logits(model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT)).logits


@pytest.fixture()
def fresh_base(tiny_model_path: Path) -> Iterator[Any]:
    import torch
    from transformers import AutoModelForCausalLM

    yield lambda: AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()


def test_an_intact_checkpoint_loads_from_a_private_verified_copy(checkpoint: tuple[Path, Path],
                                                                  fresh_base: Any) -> None:
    import torch
    from peft import PeftModel

    manifest, folder = checkpoint
    recorded = yaml.safe_load(manifest.read_text(encoding="utf-8"))["adapter"]
    expected = PeftModel.from_pretrained(fresh_base(), str(folder)).eval()
    with open_checkpoint(str(manifest)) as opened:
        assert opened.sha256 == recorded["sha256"] and dict(opened.files) == recorded["files"]
        assert opened.folder != folder and sorted(p.name for p in opened.folder.iterdir()) == sorted(opened.files)
        # A file swapped after the check is not what loads: the loader reads the copy.
        (folder / "adapter_model.safetensors").write_bytes(b"swapped")
        loaded = apply_adapter(fresh_base(), opened, merge=False)
        assert torch.allclose(_logits(loaded), _logits(expected), atol=1e-6)
    assert not opened.folder.exists()  # the private copy goes when the checkpoint is closed


def test_a_decoy_pickle_beside_the_listed_safetensors_is_refused(checkpoint: tuple[Path, Path]) -> None:
    manifest, folder = checkpoint
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04decoy")
    assert "not listed" in _refused(manifest, "adapter_model.bin", allow_pickle=True)


def test_an_extra_unlisted_file_is_refused(checkpoint: tuple[Path, Path]) -> None:
    manifest, folder = checkpoint
    (folder / "adapter_model-00002.safetensors").write_bytes(b"{}")
    _refused(manifest, "adapter_model-00002.safetensors")
    (folder / "adapter_model-00002.safetensors").unlink()
    (folder / "nested").mkdir()
    assert "not a plain file" in _refused(manifest, "nested")


def test_an_edited_adapter_config_is_caught(checkpoint: tuple[Path, Path]) -> None:
    manifest, folder = checkpoint
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["lora_alpha"] = 64  # scales every update by 8: a different model with the same weights file
    config_path.write_text(json.dumps(config), encoding="utf-8")
    assert "changed after training" in _refused(manifest, "adapter_config.json")


def test_tampered_weights_are_caught(checkpoint: tuple[Path, Path]) -> None:
    from safetensors.torch import load_file, save_file

    manifest, folder = checkpoint
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1
    save_file(tensors, weights)
    assert "changed after training" in _refused(manifest, "adapter_model.safetensors")


def test_a_missing_listed_file_is_refused(checkpoint: tuple[Path, Path]) -> None:
    manifest, folder = checkpoint
    (folder / "README.md").unlink()  # even a file no loader reads: the checkpoint is not what was recorded
    assert "missing" in _refused(manifest, "README.md")


def test_an_edited_digest_in_the_manifest_is_caught(checkpoint: tuple[Path, Path]) -> None:
    manifest, _ = checkpoint
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    data["adapter"]["files"]["adapter_config.json"] = "0" * 64
    manifest.write_text(yaml.safe_dump(data), encoding="utf-8")
    # The listed digests no longer add up to adapter.sha256 (what the results record).
    assert "adapter.sha256" in _refused(manifest, str(manifest))


def _pickled(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    weights = folder / "adapter_model.safetensors"
    torch.save(load_file(weights), folder / "adapter_model.bin")
    weights.unlink()


def test_pickle_weights_need_both_the_manifest_and_the_user(checkpoint: tuple[Path, Path], tiny_model_path: Path,
                                                            fresh_base: Any) -> None:
    manifest, folder = checkpoint
    _pickled(folder)
    _manifest(folder, manifest, str(tiny_model_path), allow_pickle=False)
    assert "does not allow" in _refused(manifest, "adapter_model.bin", allow_pickle=True)
    _manifest(folder, manifest, str(tiny_model_path), allow_pickle=True)
    assert "allow_pickle=True" in _refused(manifest, "adapter_model.bin")
    with open_checkpoint(str(manifest), allow_pickle=True) as opened:
        assert "adapter_model.bin" in opened.files
        apply_adapter(fresh_base(), opened, merge=True)


def test_a_bare_adapter_folder_is_checked_the_same_way(checkpoint: tuple[Path, Path], tiny_model_path: Path,
                                                       default_model_path: Path) -> None:
    _, folder = checkpoint
    opened = _open(folder)
    assert opened.kind is None and set(opened.files) == {"adapter_config.json", "adapter_model.safetensors"}
    assert opened.base_name == str(tiny_model_path)
    _refused(folder, "checkpoint_sha256", expected_sha256="f" * 64)
    assert "trained on" in _refused(folder, str(tiny_model_path), pretrained=str(default_model_path))
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04decoy")
    assert "not listed" in _refused(folder, "adapter_model.bin")


def test_a_bare_folder_never_loads_pickle(checkpoint: tuple[Path, Path]) -> None:
    _, folder = checkpoint
    _pickled(folder)
    assert "no manifest" in _refused(folder, "adapter_model.bin", allow_pickle=True)


def test_an_adapter_for_another_base_is_refused(checkpoint: tuple[Path, Path], default_model_path: Path) -> None:
    manifest, _ = checkpoint
    assert "was trained on base" in _refused(manifest, "trust", pretrained=str(default_model_path))


def test_results_record_the_digest_of_what_was_loaded(checkpoint: tuple[Path, Path]) -> None:
    from icl_generalization.scoring.model_class import ICLGenLM

    manifest, _ = checkpoint
    recorded = yaml.safe_load(manifest.read_text(encoding="utf-8"))["adapter"]
    lm = ICLGenLM(checkpoint=str(manifest), batch_size=1)
    info = lm.get_model_info()
    assert info["checkpoint_sha256"] == recorded["sha256"] == combined_sha256(recorded["files"])
    assert info["checkpoint_method"] == "lora" and info["checkpoint_merged"] is True
