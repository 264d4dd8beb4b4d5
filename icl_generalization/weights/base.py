"""Which base model a checkpoint was trained on, and whether the model at hand is that one.

A local base is identified by the sha256 of its ``config.json`` (minus fields that name a path or a library
version, which differ between machines for the same model), a hub model by its name and revision. Two models
with the same configuration but different weights are not told apart; the name is recorded for that.
An adapter applied to another base than its own loads without complaint and computes nonsense.
"""

from __future__ import annotations

import json
from pathlib import Path

from icl_generalization.core.digest import sha256_json
from icl_generalization.core.errors import UserError
from icl_generalization.weights.default_model import resolve_model
from icl_generalization.weights.manifest import BaseRecord, Manifest

# config.json fields that vary for one and the same model (where it was loaded from, which library wrote it).
_VOLATILE_CONFIG_KEYS = frozenset({"_name_or_path", "_model_name_or_path", "transformers_version", "dtype",
                                   "torch_dtype", "use_cache"})


def config_sha256(model_dir: str | Path) -> str:
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the model configuration {path}: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"the model configuration {path} is not a JSON object")
    return sha256_json({k: v for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS})


def base_identity(name: str, revision: str | None = None) -> BaseRecord:
    """How a manifest names its base model: the user's name, the config digest, the hub revision."""
    resolved = resolve_model(name)
    local = Path(resolved).is_dir()
    shown = name if not Path(name).expanduser().exists() else str(Path(name).expanduser().resolve())
    return BaseRecord(name=shown, config_sha256=config_sha256(resolved) if local else None,
                      revision=None if local else (revision or "main"))


def manifest_base(manifest: Manifest, pretrained: str | None) -> tuple[str, str]:
    """The base to load under ``manifest`` (``pretrained`` if given and the same model): (name, resolved path)."""
    base = manifest.base
    if pretrained:
        same, shown = _same_base(base, pretrained)
        if not same:
            raise UserError(f"checkpoint {manifest.name} was trained on base {base.name} (config sha256 "
                            f"{str(base.config_sha256)[:12]}), not on pretrained={shown}; drop pretrained= "
                            "to load the manifest's base")
    name = pretrained or base.name
    path = resolve_model(name)
    if not pretrained and Path(path).is_dir() and base.config_sha256 and config_sha256(path) != base.config_sha256:
        raise UserError(f"checkpoint {manifest.name}: base {base.name} resolves to {path}, whose config "
                        "differs from the one the checkpoint was trained on")
    return name, path


def adapter_base(adapter: str, trained_on: str | None, pretrained: str | None) -> str:
    """The base to load under a bare adapter folder whose config names ``trained_on``."""
    if pretrained and trained_on and pretrained != trained_on:
        same_folder = (Path(resolve_model(pretrained)).is_dir() and Path(trained_on).is_dir()
                       and config_sha256(resolve_model(pretrained)) == config_sha256(trained_on))
        if not same_folder:
            raise UserError(f"adapter {adapter} was trained on {trained_on}, not on pretrained={pretrained}")
    name = pretrained or trained_on
    if not name:
        raise UserError(f"adapter {adapter}: its adapter_config.json names no base model; pass pretrained=")
    return name


def _same_base(expected: BaseRecord, pretrained: str) -> tuple[bool, str]:
    """Does ``pretrained`` denote the base named in a manifest? Returns (same, description of pretrained)."""
    resolved = resolve_model(pretrained)
    if Path(resolved).is_dir():
        sha = config_sha256(resolved)
        if expected.config_sha256:
            return sha == expected.config_sha256, f"{pretrained} (config sha256 {sha[:12]})"
        return False, f"{pretrained} (a local folder; the manifest names hub model {expected.name})"
    return pretrained == expected.name, pretrained
