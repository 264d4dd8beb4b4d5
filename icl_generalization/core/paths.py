"""Where the package keeps things: the user cache, the shipped task folder, atomic file writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "ICL_GEN_CACHE"
# The installed package's folder; a source checkout has the repository's top level right above it.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def cache_dir(*parts: str) -> Path:
    """The user cache (``$ICL_GEN_CACHE``, else ``$XDG_CACHE_HOME/icl_generalization``), created on demand."""
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "icl_generalization"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def tasks_path() -> Path:
    """The folder to give lm-eval as ``--include_path``.

    In a source checkout (and an editable install) it is the repository's top-level ``lm_eval_tasks/``;
    a wheel ships the same folder as the package ``icl_generalization.lm_eval_tasks``.
    """
    checkout = PACKAGE_ROOT.parent / "lm_eval_tasks"
    if (checkout / "README.md").is_file():
        return checkout
    return PACKAGE_ROOT / "lm_eval_tasks"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final`` whole, on failure it vanishes.

    A crash or a user error half-way therefore never leaves a partial output folder behind.
    """
    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
