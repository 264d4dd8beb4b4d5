"""Where the package keeps things: the user cache, the shipped task folder, atomic file writes."""

from __future__ import annotations

import contextlib
import os
import secrets
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


# Every temporary file the package writes ends with this, so a later run can recognize (and sweep) what a
# SIGKILL left behind without ever touching a file of the user's.
TEMP_SUFFIX = ".icl-gen-tmp"


def temp_name(path: Path) -> Path:
    """A fresh hidden temporary name beside ``path`` (same folder, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename: readers never see half a file.

    An exception (KeyboardInterrupt, or the SystemExit the CLI raises on SIGTERM) removes the temporary; after a
    SIGKILL it is left under a name :func:`is_temp_name` recognizes, for the next run to sweep.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        # O_EXCL: never write through a file (or symlink) that appeared under the temporary name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final`` whole, on failure it vanishes.

    For the package's own cache only (a converted model): it replaces whatever is at ``final``, so user
    outputs go through :mod:`icl_generalization.core.outputs` instead.
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
