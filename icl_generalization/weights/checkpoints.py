"""Checkpoint manifests (``adapters/<name>.yaml``) and the checks made before a checkpoint is loaded.

A manifest names everything needed to reproduce and verify a finetuned checkpoint::

    name, kind (ft | aug_ft), method (lora | full)
    base: {name, config_sha256, revision}     the model the adapter was trained on
    adapter: {path, sha256, files}            folder relative to the manifest; sha256 of the weights
    training_data: {family, fingerprint, augmented_corpus_sha256, examples, examples_sha256}
    recipe: {...}                             inline copy
    steps, final_loss, training_seconds

The base is identified by the sha256 of its ``config.json`` (minus fields that name a path or a library
version, which differ between machines for the same model) and, for hub models, the revision. Two models
with the same configuration but different weights are not told apart; the name is recorded for that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_write_text
from icl_generalization.weights.default_model import resolve_model

MANIFEST_VERSION = 1
KINDS = ("ft", "aug_ft")
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
# config.json fields that vary for one and the same model (where it was loaded from, which library wrote it).
_VOLATILE_CONFIG_KEYS = frozenset({"_name_or_path", "_model_name_or_path", "transformers_version", "dtype",
                                   "torch_dtype", "use_cache"})


def config_sha256(model_dir: str | Path) -> str:
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the model configuration {path}: {exc}") from None
    stable = {k: v for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def base_identity(name: str, revision: str | None = None) -> dict[str, Any]:
    """How a manifest names its base model: the user's name, the config digest, the hub revision."""
    resolved = resolve_model(name)
    local = Path(resolved).is_dir()
    shown = name if not Path(name).expanduser().exists() else str(Path(name).expanduser().resolve())
    return {"name": shown, "config_sha256": config_sha256(resolved) if local else None,
            "revision": None if local else (revision or "main")}


def weights_sha256(folder: Path) -> tuple[str, dict[str, str]]:
    """sha256 of the safetensors weights in ``folder``: one file gives its own digest (checkable with
    ``sha256sum``); several give the digest of their sorted ``name digest`` lines."""
    from icl_generalization.training.corpus import file_sha256

    files = {p.name: file_sha256(p) for p in sorted(Path(folder).glob("*.safetensors"))}
    if not files:
        raise UserError(f"{folder}: no .safetensors weights file")
    if len(files) == 1:
        return next(iter(files.values())), files
    blob = "".join(f"{name} {sha}\n" for name, sha in files.items())
    return hashlib.sha256(blob.encode()).hexdigest(), files


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    text = ("# Written by `icl-gen finetune`. Weights live in adapter.path (git-ignored); this file may be committed.\n"
            + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    atomic_write_text(Path(path), text)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint resolved and verified, ready to load."""

    name: str
    method: str  # lora | full
    kind: str | None  # ft | aug_ft, None for a bare adapter folder
    folder: Path  # the adapter folder (lora) or the full model folder (full)
    sha256: str
    base_name: str
    base_path: str  # what from_pretrained loads as the base
    manifest: Path | None = None

    def info(self) -> dict[str, Any]:
        """What the results record about the checkpoint."""
        return {"checkpoint": self.name, "checkpoint_sha256": self.sha256, "checkpoint_kind": self.kind,
                "checkpoint_method": self.method, "checkpoint_base": self.base_name,
                "checkpoint_manifest": str(self.manifest) if self.manifest else None}


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read checkpoint manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"checkpoint manifest {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    problems = _manifest_problems(data)
    if problems:
        raise UserError(f"checkpoint manifest {path} is corrupt: {'; '.join(problems)}")
    return data


def _manifest_problems(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["not a YAML mapping"]
    problems = []
    for key in ("name", "kind", "method", "base", "adapter"):
        if key not in data:
            problems.append(f"missing field {key!r}")
    if problems:
        return problems
    if data["kind"] not in KINDS:
        problems.append(f"kind must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    if data["method"] not in ("lora", "full"):
        problems.append(f"method must be lora or full, got {data['method']!r}")
    base, adapter = data["base"], data["adapter"]
    if not isinstance(base, dict) or not base.get("name"):
        problems.append("base.name is missing")
    if not isinstance(adapter, dict) or not adapter.get("path") or not adapter.get("sha256"):
        problems.append("adapter.path and adapter.sha256 are required")
    return problems


def checkpoint_base_name(checkpoint: str) -> str | None:
    """The base model a checkpoint names (for sizing prompts with its tokenizer), without loading weights."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        data = read_manifest(path)
        return str(data["base"]["name"])
    config = path / ADAPTER_CONFIG
    if config.is_file():
        base = _adapter_config(path).get("base_model_name_or_path")
        return str(base) if base else None
    return None


def checkpoint_training_data(checkpoint: str) -> dict[str, Any]:
    """The manifest's record of the training data (family, data_seed, data_config); empty for a bare folder."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        data = read_manifest(path).get("training_data", {})
        return dict(data) if isinstance(data, dict) else {}
    return {}


def _adapter_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder / ADAPTER_CONFIG} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{folder / ADAPTER_CONFIG} is not a JSON object")
    return data


def check_weights_format(folder: Path, allow_pickle: bool) -> None:
    """Safetensors only: a pickle file can run code when loaded, so it needs the user's explicit consent."""
    if (folder / SAFE_WEIGHTS).is_file() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.glob("*.bin"))
    if pickles and not allow_pickle:
        raise UserError(f"{folder} holds only pickle weights ({', '.join(pickles)}), which can run code when "
                        "loaded; convert them to safetensors, or pass allow_pickle=True if you trust the file")
    if not pickles:
        raise UserError(f"{folder}: adapter weights file missing (expected {SAFE_WEIGHTS})")


def _same_base(expected: dict[str, Any], pretrained: str) -> tuple[bool, str]:
    """Does ``pretrained`` denote the base named in a manifest? Returns (same, description of pretrained)."""
    resolved = resolve_model(pretrained)
    if Path(resolved).is_dir():
        sha = config_sha256(resolved)
        if expected.get("config_sha256"):
            return sha == expected["config_sha256"], f"{pretrained} (config sha256 {sha[:12]})"
        return False, f"{pretrained} (a local folder; the manifest names hub model {expected.get('name')})"
    return pretrained == expected.get("name"), pretrained


def resolve_checkpoint(checkpoint: str, pretrained: str | None = None, allow_pickle: bool = False,
                       expected_sha256: str | None = None) -> Checkpoint:
    """Read a manifest (or a bare LoRA folder), check base model and weights; raise ``UserError`` otherwise."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return _from_manifest(path.resolve(), pretrained, allow_pickle, expected_sha256)
    if path.is_dir():
        return _from_folder(path.resolve(), pretrained, allow_pickle, expected_sha256)
    raise UserError(f"checkpoint {checkpoint!r} not found: give a manifest (adapters/NAME.yaml) or an adapter folder")


def _from_manifest(path: Path, pretrained: str | None, allow_pickle: bool, expected: str | None) -> Checkpoint:
    data = read_manifest(path)
    base = data["base"]
    if pretrained:
        same, shown = _same_base(base, pretrained)
        if not same:
            raise UserError(f"checkpoint {data['name']} was trained on base {base['name']} (config sha256 "
                            f"{str(base.get('config_sha256'))[:12]}), not on pretrained={shown}; drop pretrained= "
                            "to load the manifest's base")
    base_name = pretrained or str(base["name"])
    base_path = resolve_model(base_name)
    if not pretrained and Path(base_path).is_dir() and base.get("config_sha256") \
            and config_sha256(base_path) != base["config_sha256"]:
        raise UserError(f"checkpoint {data['name']}: base {base['name']} resolves to {base_path}, whose config "
                        "differs from the one the checkpoint was trained on")
    folder = (path.parent / str(data["adapter"]["path"])).resolve()
    if not folder.is_dir():
        raise UserError(f"checkpoint {data['name']}: adapter folder {folder} not found (weights are not committed; "
                        "train the checkpoint again or copy its folder there)")
    check_weights_format(folder, allow_pickle)
    sha, _ = _digest(folder)
    if sha != data["adapter"]["sha256"]:
        raise UserError(f"checkpoint {data['name']}: weights in {folder} have sha256 {sha[:12]}, the manifest "
                        f"records {str(data['adapter']['sha256'])[:12]}; the files changed after training")
    if expected and sha != expected:
        raise UserError(f"checkpoint {data['name']}: sha256 {sha[:12]} differs from checkpoint_sha256={expected[:12]}")
    return Checkpoint(name=str(data["name"]), method=str(data["method"]), kind=str(data["kind"]), folder=folder,
                      sha256=sha, base_name=base_name, base_path=base_path, manifest=path)


def _from_folder(folder: Path, pretrained: str | None, allow_pickle: bool, expected: str | None) -> Checkpoint:
    if not (folder / ADAPTER_CONFIG).is_file():
        raise UserError(f"{folder} is not an adapter folder (no {ADAPTER_CONFIG}); a fully finetuned model "
                        "loads with pretrained=FOLDER, or through its manifest")
    config = _adapter_config(folder)
    trained_on = config.get("base_model_name_or_path")
    if pretrained and trained_on and pretrained != trained_on:
        same_folder = (Path(resolve_model(pretrained)).is_dir() and Path(str(trained_on)).is_dir()
                       and config_sha256(resolve_model(pretrained)) == config_sha256(str(trained_on)))
        if not same_folder:
            raise UserError(f"adapter {folder.name} was trained on {trained_on}, not on pretrained={pretrained}")
    base_name = pretrained or (str(trained_on) if trained_on else None)
    if not base_name:
        raise UserError(f"{folder / ADAPTER_CONFIG} names no base model; pass pretrained=")
    check_weights_format(folder, allow_pickle)
    sha, _ = _digest(folder)
    if expected and sha != expected:
        raise UserError(f"adapter {folder.name}: sha256 {sha[:12]} differs from checkpoint_sha256={expected[:12]}")
    return Checkpoint(name=folder.name, method="lora", kind=None, folder=folder, sha256=sha, base_name=base_name,
                      base_path=resolve_model(base_name))


def _digest(folder: Path) -> tuple[str, dict[str, str]]:
    if any(folder.glob("*.safetensors")):
        return weights_sha256(folder)
    # Only reached with allow_pickle=True: the pickle file is digested the same way.
    from icl_generalization.training.corpus import file_sha256

    files = {p.name: file_sha256(p) for p in sorted(folder.glob("*.bin"))}
    if len(files) == 1:
        return next(iter(files.values())), files
    return hashlib.sha256("".join(f"{n} {s}\n" for n, s in files.items()).encode()).hexdigest(), files


def apply_adapter(model: Any, folder: Path, merge: bool) -> Any:
    """Wrap ``model`` with the LoRA adapter in ``folder``; merged into the weights unless ``merge`` is false."""
    from peft import PeftModel

    # peft reads adapter_model.safetensors when present; a pickle file was allowed explicitly before this point.
    wrapped = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    # Merging folds B@A into the base weights: evaluation then costs what the base model costs.
    return wrapped.merge_and_unload() if merge else wrapped
