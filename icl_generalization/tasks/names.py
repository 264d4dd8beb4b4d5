"""The one place that spells task, group, tag and sweep-metric names.

Tasks are ``icl_gen_<family>_<split>`` (closed book), ``icl_gen_<family>_<split>_icl`` (in context) and
``icl_gen_<family>_icl_sweep``; a forgetting control (``data/controls``) is ``icl_gen_control_<name>``. Groups
and tags are named outside the ``icl_gen_*`` pattern (``iclgen``, ``iclgen_<family>``, ``iclgen_closed_book``,
``iclgen_icl``, ``iclgen_sweep``, ``iclgen_control``) because lm-eval matches a ``--tasks`` glob against task,
group *and* tag names, and a group matching ``icl_gen_*`` makes a run fail
with "Duplicate task".
"""

from __future__ import annotations

from typing import Literal, get_args

from icl_generalization.core.errors import UserError

Condition = Literal["closed_book", "icl"]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)
# The condition a sweep task's loader is called with (its questions are asked in context, at several lengths).
SWEEP = "icl_sweep"
PREFIX = "icl_gen_"
SUITE_GROUP = "iclgen"
TAG_BY_CONDITION: dict[Condition, str] = {"closed_book": "iclgen_closed_book", "icl": "iclgen_icl"}
SWEEP_TAG = "iclgen_sweep"
# Controls are closed-book but kept out of ``iclgen_closed_book`` and the suite group: their accuracy measures
# what a model kept, not what it learned, and must not be averaged with the families'.
CONTROL_TAG = "iclgen_control"
# The metric names of every sweep task, one per context length, as in lm-eval's RULER tasks. A YAML metric
# list is static, so this menu is fixed here and a sweep runs a subset of it.
SWEEP_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def as_condition(value: str) -> Condition:
    for condition in CONDITIONS:
        if value == condition:
            return condition
    raise UserError(f"condition must be one of {(*CONDITIONS, SWEEP)}, got {value!r}")


def task_name(family: str, split: str, condition: Condition) -> str:
    return f"{PREFIX}{family}_{split}" + ("_icl" if condition == "icl" else "")


def sweep_task_name(family: str) -> str:
    return f"{PREFIX}{family}_{SWEEP}"


def control_task_name(control: str) -> str:
    return f"{PREFIX}control_{control}"


def family_group(family: str) -> str:
    return f"{SUITE_GROUP}_{family}"
