"""Every task and group config of a task folder as lm-eval resolves it, in a form JSON can hold and compare.

The task YAMLs moved to a layout of thin task files over per-family templates (``include:``); this proves the
move changed no resolved setting. A config is read the way lm-eval's ``TaskManager`` reads it for a run: the
index names every task and group and its file, lm-eval's own YAML loader follows ``include:`` and imports each
``!function`` target, and a task's config goes through ``TaskConfig`` so lm-eval's defaults are filled in.
Building the task itself is left out on purpose: that would generate every dataset. A ``!function`` target is
written as ``module.qualname`` so configs from two checkouts compare by where the function lives.

``python tests/task_configs.py FOLDER > tests/data/resolved_task_configs.json`` wrote the committed snapshot
from the layout before the move (commit 6c476e6, with that checkout first on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

Plain = str | int | float | bool | None | list["Plain"] | dict[str, "Plain"]


def _plain(value: object) -> Plain:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if callable(value):
        function: Callable[..., object] = value
        return f"{function.__module__}.{function.__qualname__}"
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"unexpected {type(value).__name__} in a resolved config: {value!r}")


def resolved_configs(include_path: Path) -> dict[str, Plain]:
    """Task or group name -> its resolved config, for every task and group the folder defines."""
    from lm_eval.config.task import TaskConfig
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml  # the loader TaskManager's factory builds tasks from

    manager = TaskManager(include_path=str(include_path), include_defaults=False)
    configs: dict[str, Plain] = {}
    for name, entry in sorted(manager.task_index.items()):
        if entry.yaml_path is None:  # a tag: the tasks that name it carry it
            continue
        raw = load_yaml(entry.yaml_path, resolve_func=True)
        configs[name] = _plain(raw if "group" in raw else TaskConfig(**raw).to_dict(keep_callable=True))
    return configs


if __name__ == "__main__":
    json.dump(resolved_configs(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
