"""Finetuning recipes: a frozen config read from ``adapters/recipes/<name>.yaml`` (or any YAML path).

A recipe holds everything that decides how a checkpoint is trained except the data and the base model's
weights: the method (LoRA or full), LoRA shape, optimiser settings, the step budget, sentence splitting
and which tokens carry the loss. It is copied inline into every manifest, so a checkpoint names its recipe
even after the YAML file changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import PACKAGE_ROOT

METHODS = ("lora", "full")
SPLITS = ("none", "independent", "cumulative")
LOSS_MODES = ("completion", "document")
BF16_MODES = ("auto", "on", "off")
SCHEDULERS = ("linear", "constant", "constant_with_warmup", "cosine")


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    # Defaults a CLI argument overrides: the recipe names what it was designed for.
    base: str | None = None
    dataset: str | None = None
    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # "all-linear" is peft's shorthand for every linear layer except the output head.
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 3e-4
    # The global batch (over all processes and accumulation steps), as the paper states it.
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_steps: int = 300
    warmup_steps: int = 0
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    max_length: int = 512
    split: str = "independent"
    loss: str = "completion"
    bf16: str = "auto"
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int = 2
    seed: int = 0
    # Generator overrides of the training family (for example a smaller reversal-curse set for CPUs). The
    # manifest records them, and evaluating the checkpoint on its own family uses the same data.
    data_config: dict[str, Any] = field(default_factory=dict)
    # Keys the file held that this version does not know are refused, so a typo never passes silently.
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.extra:
            raise ValueError(f"unknown recipe field(s): {', '.join(sorted(self.extra))}")
        if not self.name:
            raise ValueError("name must be non-empty")
        _choice("method", self.method, METHODS)
        _choice("split", self.split, SPLITS)
        _choice("loss", self.loss, LOSS_MODES)
        _choice("bf16", self.bf16, BF16_MODES)
        _choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        for name in ("lora_r", "lora_alpha", "batch_size", "gradient_accumulation_steps", "max_steps",
                     "max_length", "logging_steps", "save_steps", "save_total_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("warmup_steps and weight_decay must be >= 0")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of gradient_accumulation_steps "
                             f"{self.gradient_accumulation_steps}")
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if not isinstance(self.data_config, dict):
            raise ValueError(f"data_config must be a mapping of generator fields, got {self.data_config!r}")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module (or be 'all-linear')")

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with CLI overrides (``None`` means "keep the recipe's value")."""
        try:
            return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        except ValueError as exc:
            raise UserError(f"recipe {self.name}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("extra")
        if isinstance(out["target_modules"], tuple):
            out["target_modules"] = list(out["target_modules"])
        return out


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def recipes_dir() -> Path:
    """``adapters/recipes`` of the checkout (a wheel ships it as ``icl_generalization/recipe_presets``)."""
    checkout = PACKAGE_ROOT.parent / "adapters" / "recipes"
    return checkout if checkout.is_dir() else PACKAGE_ROOT / "recipe_presets"


def available_recipes() -> list[str]:
    folder = recipes_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def recipe_from_dict(data: Any, where: str) -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{where}: a recipe must be a YAML mapping")
    known = {f.name for f in dataclasses.fields(Recipe)} - {"extra"}
    values = {k: v for k, v in data.items() if k in known}
    values["extra"] = {k: v for k, v in data.items() if k not in known}
    try:
        return Recipe(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {exc}") from None


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (``adapters/recipes/NAME.yaml``) or by path to a YAML file."""
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        path = recipes_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UserError(f"unknown recipe {name_or_path!r}: not a file and not one of "
                        f"{', '.join(available_recipes()) or '(none found)'} in {recipes_dir()}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return recipe_from_dict(data, str(path))
