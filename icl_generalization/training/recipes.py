"""Finetuning recipes: a frozen config read from ``adapters/recipes/<name>.yaml`` (or any YAML path).

A recipe holds everything that decides how a checkpoint is trained except the data and the base model's
weights: the method (LoRA or full), LoRA shape, optimiser settings, the step budget, sentence splitting
and which tokens carry the loss. It is copied inline into every manifest, so a checkpoint names its recipe
even after the YAML file changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import PACKAGE_ROOT
from icl_generalization.core.validation import parse


def _not_bool(value: object) -> object:
    # YAML reads `yes`/`true` as booleans, and Python counts them as integers; a count is never a boolean.
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    return value


def _module_names(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected 'all-linear' or a list of module names")


PositiveInt = Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]
NonNegativeInt = Annotated[int, BeforeValidator(_not_bool), Field(ge=0)]


class Recipe(BaseModel):
    # Frozen: a recipe is copied into every manifest and must not change under it. Unknown keys are refused,
    # so a typo never passes silently. Numbers that YAML reads as strings (`1e-3`) are taken as numbers.
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    # Defaults a CLI argument overrides: the recipe names what it was designed for.
    base: str | None = None
    dataset: str | None = None
    method: Literal["lora", "full"] = "lora"
    lora_r: PositiveInt = 16
    lora_alpha: PositiveInt = 32
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    # "all-linear" is peft's shorthand for every linear layer except the output head.
    target_modules: Annotated[str | tuple[str, ...], BeforeValidator(_module_names), Field(min_length=1)] = (
        "all-linear")
    learning_rate: float = Field(default=3e-4, gt=0)
    # The global batch (over all processes and accumulation steps), as the paper states it.
    batch_size: PositiveInt = 8
    gradient_accumulation_steps: PositiveInt = 1
    max_steps: PositiveInt = 300
    warmup_steps: NonNegativeInt = 0
    weight_decay: float = Field(default=0.0, ge=0)
    lr_scheduler: Literal["linear", "constant", "constant_with_warmup", "cosine"] = "linear"
    max_length: PositiveInt = 512
    split: Literal["none", "independent", "cumulative"] = "independent"
    loss: Literal["completion", "document"] = "completion"
    bf16: Literal["auto", "on", "off"] = "auto"
    logging_steps: PositiveInt = 10
    save_steps: PositiveInt = 100
    save_total_limit: PositiveInt = 2
    seed: NonNegativeInt = 0
    # Generator overrides of the training family (for example a smaller reversal-curse set for CPUs). The
    # manifest records them, and evaluating the checkpoint on its own family uses the same data.
    data_config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _whole_accumulation_steps(self) -> Recipe:
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of gradient_accumulation_steps "
                             f"{self.gradient_accumulation_steps}")
        return self

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with CLI overrides (``None`` means "keep the recipe's value"), validated like the file."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return parse(Recipe, {**self.model_dump(), **kept}, f"recipe {self.name}")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain YAML/JSON values (tuples as lists), as manifests record it."""
        return self.model_dump(mode="json")


def recipes_dir() -> Path:
    """``adapters/recipes`` of the checkout (a wheel ships it as ``icl_generalization/recipe_presets``)."""
    checkout = PACKAGE_ROOT.parent / "adapters" / "recipes"
    return checkout if checkout.is_dir() else PACKAGE_ROOT / "recipe_presets"


def available_recipes() -> list[str]:
    folder = recipes_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


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
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the recipe ({exc})") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: PyYAML's reading of an impossible date
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not valid YAML ({first_line})") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return parse(Recipe, data, str(path))
