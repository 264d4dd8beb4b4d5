"""Ownership of outputs: the one place that decides where a command may write, and what it may replace.

Every writing command claims its output first, for the whole command:

- a **folder** output carries a marker (``.icl-gen-output.json``) naming the command, the package version,
  the inputs and every file the tool wrote there; a **file** output gets the same marker as a hidden sidecar
  (``.NAME.icl-gen-output.json``) beside it;
- a non-empty folder without a marker, a file where a folder is wanted (or the reverse), a symbolic link, an
  existing file the tool did not write, or an output another command wrote is refused with a UserError that
  says what is there: nothing of the user's is ever deleted, truncated or replaced;
- one writer per output: an exclusive ``flock`` (on the folder itself; on a ``.NAME.icl-gen.lock`` sidecar for a
  file) is held while the command runs; a second writer is refused at once rather than made to wait, since
  waiting would only make it redo, or mix into, what the first one writes;
- files go through a temporary name beside them and a rename (:func:`core.paths.atomic_write_bytes`); the
  temporaries a SIGKILL leaves behind are swept when the output is next claimed (after the lock is taken,
  so never from under a live writer), and only inside the claimed output.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from icl_generalization.core.errors import UserError
from icl_generalization.core.paths import atomic_write_bytes, atomic_write_text, is_temp_name

MARKER = ".icl-gen-output.json"
LOCK_SUFFIX = ".icl-gen.lock"
HOW = "name a new or empty --out, or move those files away first"


def package_version() -> str:
    try:
        return metadata.version("icl-generalization")
    except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH, never installed
        return "unknown"


class OutputMarker(BaseModel):
    """What a marker records: enough to recognize the tool's own output and to say who wrote it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: Literal["icl-gen"] = "icl-gen"
    command: str
    version: str
    inputs: dict[str, JsonValue]
    files: list[str]  # POSIX paths relative to the output's folder


def _absolute(path: Path) -> Path:
    # abspath, not resolve(): a symbolic link at the output must stay visible to be refused.
    return Path(os.path.abspath(Path(path).expanduser()))


def _refuse_unusable(path: Path, want: Literal["folder", "file"]) -> None:
    """Refusals that do not depend on markers: links, files in the way, the wrong kind of thing."""
    if path.is_symlink():
        raise UserError(f"--out {path} is a symbolic link (to {os.readlink(path)}); icl-gen writes only to real "
                        f"paths it can own: name the {want} itself")
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise UserError(f"--out {path}: {parent} is an existing file, so nothing can be written inside it")
            break
    if want == "folder" and path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is an existing file, and this command writes a folder; it stays untouched: "
                        "name a folder path")
    if want == "file" and path.is_dir():
        raise UserError(f"--out {path} is an existing folder, and this command writes a file; name a file path")


def _read_marker(path: Path, where: Path) -> OutputMarker | None:
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return OutputMarker.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise UserError(f"{path}: not a readable icl-gen output marker ({str(exc).splitlines()[0]}); "
                        f"icl-gen will not write to {where}; {HOW}") from None


def _check_command(marker: OutputMarker, command: str, where: Path) -> None:
    if marker.command != command:
        raise UserError(f"--out {where} was written by `icl-gen {marker.command}`, not `icl-gen {command}`; "
                        "name another --out")


def _lock(fd: int, where: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"--out {where} is being written by another icl-gen command right now; wait for it to "
                        "finish or name another --out") from None


def _through_link(root: Path, target: Path) -> Path | None:
    """The first symbolic link between ``root`` and ``target`` (exclusive): writing through it would leave
    the output."""
    for parent in reversed(target.parents):
        if root in parent.parents and parent.is_symlink():
            return parent
    return None


def _remove_stale(root: Path, stale: Iterable[str]) -> None:
    """Remove files a previous run of the tool wrote here and this one did not, then the folders they emptied."""
    for rel in sorted(stale):
        # normpath: an edited marker naming '../x', '/x' or '.' must not reach outside the output (or remove it).
        target = Path(os.path.normpath(root / rel))
        if root not in target.parents or _through_link(root, target):  # a link: what it points to is not ours
            continue
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        for parent in target.parents:
            if parent == root or root not in parent.parents:
                break
            with contextlib.suppress(OSError):  # not empty: something else lives there; keep it
                parent.rmdir()


class _Owned:
    """Bookkeeping shared by folder and file outputs: the marker and the files written under it."""

    def __init__(self, base: Path, marker_path: Path, command: str, inputs: Mapping[str, JsonValue],
                 earlier: OutputMarker | None, incremental: bool) -> None:
        self.base = base
        self._marker_path = marker_path
        self._command = command
        self._inputs = dict(inputs)
        self._incremental = incremental
        self._written: set[str] = set()
        # Until the command finishes, the marker keeps every file an earlier run wrote too: a run killed
        # half-way must still know them as its own.
        self._known: set[str] = set(earlier.files) if earlier else set()

    def _rel(self, path: Path) -> str:
        target = _absolute(self.base / path)
        if self.base not in target.parents:
            raise ValueError(f"{target} is outside the claimed output {self.base}")
        link = _through_link(self.base, target)
        if link:
            raise UserError(f"{link} inside the output is a symbolic link (to {os.readlink(link)}); icl-gen will "
                            f"not write {target} through it. Remove the link or name another --out")
        return target.relative_to(self.base).as_posix()

    def record(self, *paths: Path) -> None:
        """Note files written inside the output by other code (through atomic writes), so they count as ours."""
        rels = {self._rel(p) for p in paths}
        self._written |= rels
        if not rels <= self._known:
            self._known |= rels
            self._save(self._known)

    def write_bytes(self, path: Path | str, data: bytes) -> Path:
        target = self.base / self._rel(Path(path))
        self.record(target)  # recorded before it lands: a kill in between leaves a file the marker names
        atomic_write_bytes(target, data)
        return target

    def write_text(self, path: Path | str, text: str) -> Path:
        return self.write_bytes(path, text.encode("utf-8"))

    def _save(self, files: Iterable[str]) -> None:
        marker = OutputMarker(command=self._command, version=package_version(), inputs=self._inputs,
                              files=sorted(files))
        atomic_write_text(self._marker_path, marker.model_dump_json(indent=2) + "\n")

    def _finish(self) -> None:
        if self._incremental:
            self._save(self._known)
            return
        self._save(self._written)
        _remove_stale(self.base, self._known - self._written)


class OutputFolder(_Owned):
    """A claimed folder: write through ``write_text``/``write_bytes`` (paths relative to ``root``)."""

    @property
    def root(self) -> Path:
        return self.base


class OutputFile(_Owned):
    """A claimed file (``path``) and its declared companions in the same folder (e.g. a stats file)."""

    def __init__(self, path: Path, companions: tuple[Path, ...], marker_path: Path, command: str,
                 inputs: Mapping[str, JsonValue], earlier: OutputMarker | None, incremental: bool) -> None:
        super().__init__(path.parent, marker_path, command, inputs, earlier, incremental)
        self.path = path
        self.companions = companions


def check_output(path: Path, command: str, kind: Literal["folder", "file"], companions: Iterable[Path] = ()) -> None:
    """The refusals of :func:`claim_folder` / :func:`claim_file`, writing nothing: a command that claims two
    outputs checks both first, so refusing the second does not leave the first one created."""
    target = _absolute(path)
    _refuse_unusable(target, kind)
    if kind == "folder":
        _check_folder(target, command)
        return
    extra = tuple(_absolute(c) for c in companions)
    for companion in extra:
        _refuse_unusable(companion, "file")
    _check_file(target, extra, _sidecar(target), command)


def _sidecar(target: Path) -> Path:
    return target.with_name(f".{target.name}{MARKER}")


@contextlib.contextmanager
def claim_folder(path: Path, command: str, inputs: Mapping[str, JsonValue],
                 incremental: bool = False) -> Iterator[OutputFolder]:
    """Own folder ``path`` for the duration of the block (see the module's docstring for the rules).

    ``incremental``: files of earlier runs stay (a resumable run); otherwise the files an earlier run of the
    tool wrote and this one did not are removed when the block succeeds, so the folder never mixes two runs.
    """
    root = _absolute(path)
    _refuse_unusable(root, "folder")
    _check_folder(root, command)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    _lock(fd, root)
    try:
        # Checked again under the lock: another process may have written between the first look and now.
        earlier = _check_folder(root, command)
        _sweep(_temporaries_in(root))
        folder = OutputFolder(base=root, marker_path=root / MARKER, command=command, inputs=inputs,
                              earlier=earlier, incremental=incremental)
        folder._save(folder._known)  # the folder is ours from now on, even if this run is killed
        yield folder
        folder._finish()
    finally:
        os.close(fd)  # releases the lock


def _temporaries_in(root: Path) -> Iterator[Path]:
    """Temporaries under ``root``, leaving out nested outputs (their own claim sweeps them, under their own
    lock, so a writer of a nested output never has a temporary pulled from under it)."""
    for folder, dirs, files in os.walk(root):  # os.walk does not follow links: the sweep stays inside
        if Path(folder) != root and MARKER in files:
            dirs.clear()
            continue
        yield from (Path(folder) / name for name in files if is_temp_name(name))


def _check_folder(root: Path, command: str) -> OutputMarker | None:
    if not root.is_dir():
        return None
    marker = _read_marker(root / MARKER, root)
    if marker is None:
        foreign = sorted(p.name for p in root.iterdir() if not is_temp_name(p.name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise UserError(f"--out {root} already holds {shown}, which icl-gen did not write (no {MARKER}); {HOW}")
        return None
    _check_command(marker, command, root)
    return marker


@contextlib.contextmanager
def claim_file(path: Path, command: str, inputs: Mapping[str, JsonValue],
               companions: Iterable[Path] = (), incremental: bool = False) -> Iterator[OutputFile]:
    """Own file ``path`` (and ``companions`` beside it) for the duration of the block.

    The file itself may be appended to by the caller (an append-only corpus); companions are written through
    :meth:`OutputFile.write_text`. ``incremental`` as for :func:`claim_folder`.
    """
    target = _absolute(path)
    extra = tuple(_absolute(c) for c in companions)
    for p in (target, *extra):
        _refuse_unusable(p, "file")
        if p.parent != target.parent:
            raise ValueError(f"companion {p} is not beside {target}")
    sidecar = _sidecar(target)
    _check_file(target, extra, sidecar, command)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.with_name(f".{target.name}{LOCK_SUFFIX}"), os.O_RDWR | os.O_CREAT, 0o666)
    _lock(fd, target)
    try:
        earlier = _check_file(target, extra, sidecar, command)
        names = {p.name for p in (target, *extra)}
        _sweep(p for p in target.parent.iterdir()
               if is_temp_name(p.name) and any(p.name.startswith(f".{n}.") for n in names))
        owned = OutputFile(target, extra, sidecar, command, inputs, earlier, incremental)
        owned.record(target)
        yield owned
        owned._finish()
    finally:
        os.close(fd)


def _check_file(target: Path, companions: tuple[Path, ...], sidecar: Path, command: str) -> OutputMarker | None:
    marker = _read_marker(sidecar, target)
    if marker is not None:
        _check_command(marker, command, target)
    ours = set(marker.files) if marker else set()
    for p in (target, *companions):
        if p.exists() and p.name not in ours:
            raise UserError(f"--out {target}: {p} exists and icl-gen did not write it (no {sidecar.name} naming "
                            f"it); it stays untouched; name another --out")
    return marker


def _sweep(temporaries: Iterable[Path]) -> None:
    for path in temporaries:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
