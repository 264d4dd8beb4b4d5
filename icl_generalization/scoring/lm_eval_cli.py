"""``icl-gen eval``: lm-eval's own CLI, with the package's model registered and its task folder included.

lm-eval 0.4.13 finds tasks only through ``--include_path`` and models only through ``register_model`` in the
same process, so the wrapper does exactly those two things and hands every argument to lm-eval unchanged.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import tasks_path
from icl_generalization.scoring.model_class import MODEL_NAME, register


def lm_eval_argv(args: list[str]) -> list[str]:
    """The argument list for lm-eval's parser: ``run``, the user's arguments, our model and folder."""
    if any(a == "--include_path" or a.startswith("--include_path=") for a in args):
        raise UserError("icl-gen eval adds its own --include_path; to add another task folder, run "
                        f"`lm_eval --include_path DIR` with DIR holding both your tasks and {tasks_path()}")
    out = list(args)
    if out and out[0] in ("run", "ls", "validate"):
        command, out = out[0], out[1:]
    else:
        command = "run"
    if command == "run" and not any(a == "--model" or a.startswith("--model=") for a in out):
        out = ["--model", MODEL_NAME, *out]
    return [command, *out, "--include_path", str(tasks_path())]


def _raised_by_lm_eval(exc: BaseException) -> bool:
    """Whether lm-eval itself raised ``exc`` (its innermost frame is in lm-eval's code, not the package's)."""
    import lm_eval

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(Path(lm_eval.__file__).parent)


def run_lm_eval(args: list[str]) -> int:
    from lm_eval.__main__ import cli_evaluate

    register()
    saved = sys.argv
    sys.argv = ["lm-eval", *lm_eval_argv(args)]
    try:
        cli_evaluate()
    except SystemExit as exc:  # argparse's --help and usage errors
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except ValueError as exc:
        # lm-eval answers a bad request (an unknown task, a bad --limit...) with a ValueError of its own: the
        # user's to fix. A ValueError from the package's code stays what it is, a bug.
        if _raised_by_lm_eval(exc):
            raise UserError(f"lm-eval: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        raise
    finally:
        sys.argv = saved
    return 0
