"""A built wheel carries the task folder, recipes and prompts, and finds them outside the checkout; the nox
sessions' helpers (lowest pins from pyproject, the wheel contents check) do what they say."""

import functools
import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_tasks_recipes_and_prompts(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)
    probe = ("from icl_generalization.core.paths import tasks_path;"
             "from icl_generalization.training.recipes import load_recipe;"
             "from icl_generalization.training.strategies import prompt_template;"
             "from icl_generalization.data.controls import CONTROLS;"
             "print(tasks_path(), len([*tasks_path().rglob('*.yaml'), *tasks_path().rglob('*_yaml')]),"
             " load_recipe('cpu-small').name,"
             " len(prompt_template('global')) > 0, CONTROLS['world_facts'].check(CONTROLS['world_facts'].load()))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith(str(target)) and int(out[1]) == len([*(ROOT / "lm_eval_tasks").rglob("*.yaml"),
                                                                     *(ROOT / "lm_eval_tasks").rglob("*_yaml")])
    assert out[2:] == ["cpu-small", "True", "[]"]  # the control's fact set ships, and its golds check


@functools.cache  # nox registers each session once per process
def _noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lowest_session_pins_each_floor_and_every_range_is_closed() -> None:
    from packaging.requirements import Requirement

    nox_file = _noxfile()
    pins = [Requirement(p) for p in nox_file.lowest_pins()]
    assert [p.name for p in pins] == list(nox_file.FLOORED)
    declared = {r.name: r for r in map(Requirement, tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "project"]["dependencies"])}
    for pin in pins:
        (floor,) = pin.specifier
        assert floor.operator == "==" and floor.version in declared[pin.name].specifier
        # A ceiling below the next major version: a breaking release is opted into, not installed by surprise.
        assert any(s.operator == "<" for s in declared[pin.name].specifier), declared[pin.name]


def test_lowest_pins_refuse_an_open_or_ambiguous_floor(tmp_path: Path) -> None:
    nox_file = _noxfile()
    deps = ", ".join(f'"{name}>=1.0"' for name in nox_file.FLOORED)
    (tmp_path / "pyproject.toml").write_text(f"[project]\ndependencies = [{deps}]\n")
    assert nox_file.lowest_pins(tmp_path / "pyproject.toml")[0] == f"{nox_file.FLOORED[0]}==1.0"
    (tmp_path / "pyproject.toml").write_text(f"[project]\ndependencies = [{deps.replace('>=1.0', '', 1)}]\n")
    with pytest.raises(ValueError, match="exactly one >= bound"):
        nox_file.lowest_pins(tmp_path / "pyproject.toml")


def test_wheel_contents_check_catches_a_missing_yaml_and_a_test_file(tmp_path: Path) -> None:
    nox_file = _noxfile()
    wheel = tmp_path / "icl_generalization-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tests/conftest.py", "")
    with pytest.raises(RuntimeError, match=r"missing \[.*world_facts/items\.jsonl.*icl_gen_reversal_curse_p2d\.yaml.*"
                                           r"from tests/: \['tests/"):
        nox_file.check_wheel_contents(wheel)
