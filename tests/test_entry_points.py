"""The plugin entry points, loaded the way a harness discovers them: through the installed metadata.

A renamed module, class or function behind an entry point breaks discovery without breaking any import in the
package itself; loading the entry points catches it. (The metadata is the installed one: after editing
pyproject's entry points, reinstall (`make install`) before running this.)
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from icl_generalization.core.paths import tasks_path
from icl_generalization.scoring.model_class import ICLGenLM


def _entry_point(group: str) -> EntryPoint:
    (found,) = entry_points(group=group, name="icl-gen")
    assert found.dist is not None and found.dist.name == "icl-generalization", found
    return found


def test_model_entry_point_loads_the_model_class() -> None:
    assert _entry_point("lm_eval.models").load() is ICLGenLM


def test_task_entry_point_returns_the_task_folder() -> None:
    folder = _entry_point("lm_eval.tasks").load()()
    assert folder == tasks_path()
    assert any(folder.rglob("icl_gen_*.yaml"))
