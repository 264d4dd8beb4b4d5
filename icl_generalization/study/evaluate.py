"""An lm-eval evaluation that keeps what ``icl-gen rescore`` needs: per-sample logs and content-free priors.

``icl-gen eval`` and ``reproduce`` both run through :func:`evaluate`: lm-eval's own CLI (``scoring.lm_eval_cli``)
with ``--log_samples`` added whenever results are written (every choice's log-likelihood is in those logs), then,
unless ``--no_priors`` is given, the content-free priors of every results file the run wrote
(``analysis.priors``), scored with the same model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from icl_generalization.analysis.priors import write_priors

NO_PRIORS = "--no_priors"
_OUTPUT = ("--output_path", "-o")
_LOG_SAMPLES = ("--log_samples", "-s")


def _value(args: list[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if arg.startswith(f"{name}="):
                return arg.partition("=")[2]
    return None


def _results_files(output: Path) -> set[Path]:
    """lm-eval's results files under ``--output_path``: ``DIR/<model>/results_<date>.json`` for a folder,
    ``FILE_<date>.json`` beside a ``FILE.json``."""
    if output.suffix == ".json":
        return set(output.parent.glob(f"{output.stem}_*.json")) if output.parent.is_dir() else set()
    return set(output.rglob("results_*.json")) if output.is_dir() else set()


def with_log_samples(args: list[str]) -> list[str]:
    """The arguments with ``--log_samples`` added when results are written (lm-eval needs ``--output_path``)."""
    if _value(args, _OUTPUT) is None or any(a in _LOG_SAMPLES for a in args):
        return list(args)
    return [*args, "--log_samples"]


def evaluate(args: list[str], log: Callable[[str], None] = print) -> int:
    """Run lm-eval with ``args``; then store the priors of each results file it wrote. lm-eval's exit code."""
    from icl_generalization.scoring.lm_eval_cli import run_lm_eval

    priors = NO_PRIORS not in args
    args = with_log_samples([a for a in args if a != NO_PRIORS])
    output = _value(args, _OUTPUT)
    before = _results_files(Path(output)) if output else set()
    code = run_lm_eval(args)
    if code != 0 or not output or not priors or (args and args[0] in ("ls", "validate")):
        return code
    # Under `accelerate launch` only rank 0 holds the results, and rebuilding the model there would wait on a
    # process group the other ranks have already left; the priors are one single-process run away instead.
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if int(os.environ.get("RANK", "0")) == 0:
            log("content-free priors skipped under a multi-process launch (calibrated accuracy will read n/a); "
                "rerun the evaluation in one process to store them")
        return code
    for results_file in sorted(_results_files(Path(output)) - before):
        written = write_priors(results_file)
        if written is not None:
            log(f"content-free priors: {written}")
    return code
