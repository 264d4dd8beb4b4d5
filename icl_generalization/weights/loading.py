"""Open a finetuned checkpoint for loading: base checked, every file verified, loaders fed a private copy.

``checkpoint=`` is a manifest (``adapters/NAME.yaml``, LoRA or full finetune) or a bare LoRA folder (what
lm-eval's ``peft=`` names). Inside ``open_checkpoint`` the checkpoint's ``folder`` is a private copy of exactly
the verified bytes (see ``verify.py``); its ``sha256`` is the digest of what loads, which the results record.

Pickle weights (``*.bin``, ``*.pt``, ...) can run code when loaded: they load only when the manifest allows
them (``adapter.allow_pickle: true``) and the user passes ``allow_pickle=True``; a bare folder has no
manifest, so there they never load.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icl_generalization.core.errors import UserError
from icl_generalization.weights.base import adapter_base, manifest_base
from icl_generalization.weights.default_model import resolve_model
from icl_generalization.weights.manifest import (
    ADAPTER_CONFIG,
    SAFE_WEIGHTS,
    Kind,
    Method,
    TrainingData,
    is_pickle,
    read_manifest,
)
from icl_generalization.weights.verify import folder_files, verified_copy

# peft's save_pretrained writes a model card beside a bare adapter; no loader reads it, so it is not copied.
_BARE_TOLERATED = frozenset({"README.md"})


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint verified and ready to load."""

    name: str
    method: Method
    kind: Kind | None  # None for a bare adapter folder
    source: Path  # the checkpoint folder as given (adapter folder, or full model folder)
    folder: Path  # the private verified copy that loaders read; gone once open_checkpoint exits
    files: Mapping[str, str]  # name -> sha256 of every file loaded
    sha256: str  # one digest over ``files``: exactly what was loaded
    base_name: str
    base_path: str  # what from_pretrained loads as the base
    manifest: Path | None = None
    training_data: TrainingData | None = None  # None for a bare adapter folder

    def info(self) -> dict[str, str | int | None]:
        """What the results record about the checkpoint (with what its augmentation added, for ``compare``)."""
        data = self.training_data
        return {"checkpoint": self.name, "checkpoint_sha256": self.sha256, "checkpoint_kind": self.kind,
                "checkpoint_method": self.method, "checkpoint_base": self.base_name,
                "checkpoint_manifest": str(self.manifest) if self.manifest else None,
                "checkpoint_strategy": data.augmentation_strategy if data else None,
                "checkpoint_tokens_added": data.augmented_tokens if data else None,
                "checkpoint_token_budget": data.token_budget if data else None}


@contextlib.contextmanager
def open_checkpoint(checkpoint: str, pretrained: str | None = None, allow_pickle: bool = False,
                    expected_sha256: str | None = None) -> Iterator[Checkpoint]:
    """Check the base model and every file of ``checkpoint``; raise ``UserError`` on any doubt."""
    path = Path(checkpoint).expanduser().resolve()
    if path.is_file():
        opened = _from_manifest(path, pretrained, allow_pickle)
    elif path.is_dir():
        opened = _from_folder(path, pretrained)
    else:
        raise UserError(f"checkpoint {checkpoint!r} not found: give a manifest (adapters/NAME.yaml) "
                        "or an adapter folder")
    with opened as loaded:
        if expected_sha256 and loaded.sha256 != expected_sha256:
            raise UserError(f"checkpoint {loaded.name}: sha256 {loaded.sha256[:12]} differs from "
                            f"checkpoint_sha256={expected_sha256[:12]}")
        yield loaded


@contextlib.contextmanager
def _from_manifest(path: Path, pretrained: str | None, allow_pickle: bool) -> Iterator[Checkpoint]:
    manifest = read_manifest(path)
    base_name, base_path = manifest_base(manifest, pretrained)
    folder = (path.parent / manifest.adapter.path).resolve()
    if not folder.is_dir():
        raise UserError(f"checkpoint {manifest.name}: folder {folder} not found (weights are not committed; "
                        "train the checkpoint again or copy its folder there)")
    for name in sorted(filter(is_pickle, manifest.adapter.files)):
        if not manifest.adapter.allow_pickle:
            raise UserError(f"{folder / name} is a pickle file, which can run code when loaded, and the manifest "
                            f"{path} does not allow pickle files; convert it to safetensors")
        if not allow_pickle:
            raise UserError(f"{folder / name} is a pickle file, which can run code when loaded; pass "
                            "allow_pickle=True if you trust it (the manifest allows it), or convert it to safetensors")
    with verified_copy(folder, manifest.adapter.files, f"the manifest {path}") as copy:
        yield Checkpoint(name=manifest.name, method=manifest.method, kind=manifest.kind, source=folder,
                         folder=copy.folder, files=copy.files, sha256=copy.sha256, base_name=base_name,
                         base_path=base_path, manifest=path, training_data=manifest.training_data)


@contextlib.contextmanager
def _from_folder(folder: Path, pretrained: str | None) -> Iterator[Checkpoint]:
    present = folder_files(folder)
    if ADAPTER_CONFIG not in present:
        raise UserError(f"{folder} is not an adapter folder (no {ADAPTER_CONFIG}); a fully finetuned model "
                        "loads through its manifest")
    if SAFE_WEIGHTS not in present:
        pickles = [name for name in present if is_pickle(name)]
        if pickles:
            raise UserError(f"{folder / pickles[0]} is a pickle file, which can run code when loaded; a bare "
                            "adapter folder has no manifest to allow it: convert it to safetensors")
        raise UserError(f"{folder / SAFE_WEIGHTS}: adapter weights file missing")
    listing = f"a bare adapter folder's files ({ADAPTER_CONFIG}, {SAFE_WEIGHTS}, README.md)"
    with verified_copy(folder, {ADAPTER_CONFIG: None, SAFE_WEIGHTS: None}, listing, _BARE_TOLERATED) as copy:
        # The base is read from the copied bytes, the same adapter_config.json that peft will read.
        trained_on = _adapter_config(copy.folder).get("base_model_name_or_path")
        base_name = adapter_base(folder.name, str(trained_on) if trained_on else None, pretrained)
        yield Checkpoint(name=folder.name, method="lora", kind=None, source=folder, folder=copy.folder,
                         files=copy.files, sha256=copy.sha256, base_name=base_name,
                         base_path=resolve_model(base_name))


def _adapter_config(folder: Path) -> dict[str, object]:
    try:
        data = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{folder / ADAPTER_CONFIG} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{folder / ADAPTER_CONFIG} is not a JSON object")
    return data


def apply_adapter(model: Any, checkpoint: Checkpoint, merge: bool) -> Any:
    """Wrap ``model`` (a transformers model, hence Any) with the checkpoint's LoRA adapter; merged into the
    weights unless ``merge`` is false. Call inside ``open_checkpoint``: peft reads the verified copy."""
    from peft import PeftModel

    if checkpoint.method != "lora":
        raise ValueError(f"checkpoint {checkpoint.name} is a {checkpoint.method} finetune, not an adapter")
    # peft opens adapter_config.json and adapter_model.safetensors (adapter_model.bin only where both the
    # manifest and the user allowed pickle): in the private copy those are the verified files and nothing else.
    wrapped = PeftModel.from_pretrained(model, str(checkpoint.folder), is_trainable=False)
    # Merging folds B@A into the base weights: evaluation then costs what the base model costs.
    return wrapped.merge_and_unload() if merge else wrapped


# --- what a checkpoint names, without loading it ---------------------------------------------------------


def checkpoint_base_name(checkpoint: str) -> str | None:
    """The base model a checkpoint names (for sizing prompts with its tokenizer), without loading weights."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return read_manifest(path).base.name
    if (path / ADAPTER_CONFIG).is_file():
        base = _adapter_config(path).get("base_model_name_or_path")
        return str(base) if base else None
    return None


def checkpoint_training_data(checkpoint: str) -> TrainingData | None:
    """The manifest's record of the training data; None for a bare adapter folder."""
    path = Path(checkpoint).expanduser()
    return read_manifest(path).training_data if path.is_file() else None
