"""The checkpoint manifest (``adapters/<name>.yaml``): a typed, frozen record, read and validated once per file.

A manifest names everything needed to reproduce and verify a finetuned checkpoint::

    manifest_version: 2
    name, kind (ft | aug_ft), method (lora | full)
    base: {name, config_sha256, revision}      the model the checkpoint was trained on
    adapter: {path, sha256, files, allow_pickle}
        path      the checkpoint folder, relative to the manifest
        files     the sha256 of EVERY file in that folder (weights, adapter or model config, tokenizer, ...)
        sha256    one digest over the sorted ``name digest`` lines of ``files``: what the results record
    training_data: {family, fingerprint, ...}  recipe: {...}  steps, final_loss, training_seconds, ...

Version 1 manifests listed only the ``*.safetensors`` files, so an edited ``adapter_config.json`` (say a
different ``lora_alpha``) or a decoy weights file beside them went unnoticed; they are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from icl_generalization.core.digest import sha256_of
from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_write_text
from icl_generalization.core.validation import describe

MANIFEST_VERSION: Final = 2
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
# Suffixes transformers / peft / torch load with pickle (torch.load), which can run code while loading.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


def is_pickle(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def combined_sha256(files: Mapping[str, str]) -> str:
    """One digest for a set of files: sha256 of their sorted ``name digest`` lines (a renamed file counts)."""
    return sha256_of("".join(f"{name} {sha}\n" for name, sha in sorted(files.items())))


def _plain_name(name: str) -> str:
    # Names are joined to the checkpoint folder: a path separator or '..' would reach outside it.
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError("expected a plain file name inside the checkpoint folder (no path separators, not '..')")
    return name


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, AfterValidator(_plain_name)]
Text = Annotated[str, Field(min_length=1)]
Kind = Literal["ft", "aug_ft"]
Method = Literal["lora", "full"]


class _Record(BaseModel):
    # coerce_numbers_to_str: YAML reads `name: 2024` or `revision: 1.0` as numbers; lax mode already reads
    # the reverse (PyYAML leaves `1e-3` a string) as numbers. Unknown fields are typos, not extensions.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


class BaseRecord(_Record):
    """The base model, by the user's name, the digest of its config.json (local models), the hub revision."""

    name: Text
    config_sha256: Sha256 | None
    revision: str | None


class FilesRecord(_Record):
    path: Text
    files: Mapping[FileName, Sha256] = Field(min_length=1)
    sha256: Sha256  # after files: its check reads them
    # A pickle-format file loads only when this says so AND the user passes allow_pickle=True.
    allow_pickle: bool = False

    @field_validator("files")
    @classmethod
    def _has_weights(cls, files: Mapping[str, str]) -> Mapping[str, str]:
        if not any(name.lower().endswith(WEIGHT_SUFFIXES) for name in files):
            raise ValueError(f"expected a weights file among them (a name ending in {', '.join(WEIGHT_SUFFIXES)})")
        return files

    @field_validator("sha256")
    @classmethod
    def _adds_up(cls, sha256: str, info: ValidationInfo) -> str:
        files = info.data.get("files")
        if files is not None and sha256 != combined_sha256(files):
            raise ValueError(f"expected {combined_sha256(files)}, the digest of the files listed (a digest was edited)")
        return sha256


class TrainingData(_Record):
    family: Text
    data_seed: int
    data_config: Mapping[str, JsonValue]
    fingerprint: Sha256
    documents: int = Field(ge=0)
    augmented_corpus: str | None
    augmented_corpus_sha256: Sha256 | None
    augmented_lines: int = Field(ge=0)
    # What the augmented corpus adds, under the base model's tokenizer (0 for plain FT), which strategy wrote it
    # (its lines' ``mode``) and the matched token budget it was cut to; None in manifests older than these.
    augmented_tokens: int | None = Field(default=None, ge=0)
    augmentation_strategy: str | None = None
    token_budget: int | None = Field(default=None, ge=1)
    examples: int = Field(ge=0)
    examples_sha256: Sha256
    split: Text
    truncated_examples: int = Field(ge=0)


class Manifest(_Record):
    manifest_version: Literal[2]
    name: Text
    kind: Kind
    method: Method
    base: BaseRecord
    adapter: FilesRecord
    training_data: TrainingData
    recipe: Mapping[str, JsonValue]
    steps: int = Field(ge=0)
    # None: not known (a run resumed from the checkpoint of its last step before any loss had been logged).
    final_loss: float | None
    mean_loss: float
    training_seconds: float = Field(ge=0)
    resumed_from_step: int | None
    processes: int = Field(ge=1)
    bf16: bool
    device: Text


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``, validated; a file read again with the same text is not parsed again."""
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read checkpoint manifest {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"checkpoint manifest {path} is not UTF-8 text") from None
    return _parse(str(path), text)


@lru_cache(maxsize=32)
def _parse(path: str, text: str) -> Manifest:
    # Keyed by the text, not the path: an edited manifest is parsed (and checked) afresh.
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: PyYAML's reading of an impossible date
        raise UserError(f"checkpoint manifest {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"checkpoint manifest {path} is not a YAML mapping")
    version = data.get("manifest_version")
    if str(version) == "1":
        raise UserError(f"checkpoint manifest {path} is version 1, whose digests cover only the *.safetensors "
                        "files (not adapter_config.json, the tokenizer or other files that change what loads); "
                        f"re-run `icl-gen finetune` to write a version {MANIFEST_VERSION} manifest")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe(exc, f"checkpoint manifest {path}")) from None



def write_manifest(path: Path, manifest: Manifest) -> None:
    text = ("# Written by `icl-gen finetune`. Weights live in adapter.path (git-ignored); this file may be committed.\n"
            + yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    atomic_write_text(Path(path), text)
