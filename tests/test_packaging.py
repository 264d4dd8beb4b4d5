"""A built wheel carries the task folder, recipes and prompts, and finds them outside the checkout."""

import subprocess
import sys
from pathlib import Path

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
             "from icl_generalization.training.augment import prompt_template;"
             "print(tasks_path(), len([*tasks_path().rglob('*.yaml'), *tasks_path().rglob('*_yaml')]),"
             " load_recipe('cpu-small').name,"
             " len(prompt_template('global')) > 0)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith(str(target)) and int(out[1]) == len([*(ROOT / "lm_eval_tasks").rglob("*.yaml"),
                                                                     *(ROOT / "lm_eval_tasks").rglob("*_yaml")])
    assert out[2:] == ["cpu-small", "True"]
