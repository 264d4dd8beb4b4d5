"""A byte-level picture of a folder tree, to show that a refused or resumed command left it as expected."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` (hidden ones too): file bytes, where a link points, or "dir"."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            entries[rel] = path.read_bytes()
        else:
            entries[rel] = "dir"
    return entries
