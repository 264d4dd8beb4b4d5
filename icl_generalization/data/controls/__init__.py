"""The registry of forgetting controls: fixed closed-book fact sets the base model already knows.

Scored beside every condition, a control shows what finetuning cost as well as what it gained (see
``control.py`` for why a control is not a dataset family). A new control is its package (``items.jsonl``,
``source.json``, a checker) plus one line here.
"""

from __future__ import annotations

from icl_generalization.core.errors import UserError
from icl_generalization.data.controls import world_facts
from icl_generalization.data.controls.control import ControlSpec

CONTROLS: dict[str, ControlSpec] = {control.name: control for control in (
    world_facts.CONTROL,
)}


def get_control(name: str) -> ControlSpec:
    try:
        return CONTROLS[name]
    except KeyError:
        raise UserError(f"unknown control {name!r}; choose from {', '.join(CONTROLS)}") from None
