"""Verify a checkpoint folder file by file and hand out a private copy of exactly the verified bytes.

Loaders (peft, transformers) pick files by name from a folder: a file nobody vouched for (a decoy
``adapter_model.bin`` beside the listed safetensors, an extra ``*.safetensors`` shard) would change what
loads. So the folder must hold exactly the listed files, and loading never reads the folder itself: each
file is hashed while it is copied into a private temporary folder, and the loaders read that copy. A file
swapped after the check therefore cannot be what loads (no check-then-use race).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from icl_generalization.core.digest import sha256_file
from icl_generalization.core.errors import UserError
from icl_generalization.weights.manifest import combined_sha256


def folder_files(folder: Path) -> list[str]:
    """The names of the files in ``folder``, sorted; a sub-folder or link is refused (nothing could vouch
    for what it points to)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        raise UserError(f"cannot list the checkpoint folder {folder}: {exc.strerror}") from None
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            raise UserError(f"{Path(folder) / entry.name} is not a plain file; a checkpoint folder holds only "
                            "plain files, each listed with its sha256")
    return [entry.name for entry in entries]


def digest_folder(folder: Path) -> dict[str, str]:
    """The sha256 of every file in ``folder``: what a manifest lists."""
    return {name: sha256_file(Path(folder) / name) for name in folder_files(folder)}


@dataclass(frozen=True)
class VerifiedCopy:
    folder: Path  # private; exists only inside ``verified_copy``
    files: Mapping[str, str]  # name -> sha256 of the bytes copied
    sha256: str  # combined_sha256(files)


@contextlib.contextmanager
def verified_copy(source: Path, expected: Mapping[str, str | None], listing: str,
                  tolerated: frozenset[str] = frozenset()) -> Iterator[VerifiedCopy]:
    """Copy the files named in ``expected`` from ``source`` into a private folder, checking each digest.

    ``expected`` maps each file to its sha256, or to None where no digest is known (a bare adapter folder:
    the digest of what was read is then recorded). Any other file in ``source`` is refused, except the
    ``tolerated`` ones, which are neither copied nor loaded. ``listing`` names the list in messages.
    """
    present = set(folder_files(source))
    unlisted = sorted(present - set(expected) - tolerated)
    if unlisted:
        raise UserError(f"{source}: {', '.join(unlisted)} not listed in {listing}; a file nobody vouched for "
                        "could change what loads: remove it, or re-run `icl-gen finetune`")
    missing = sorted(set(expected) - present)
    if missing:
        raise UserError(f"{source}: {', '.join(missing)} missing ({listing} lists it)")
    private = Path(tempfile.mkdtemp(prefix="icl-gen-verified-"))  # mode 0700: no one else can swap files in
    try:
        copied = {name: _copy(source / name, private / name, expected[name], listing) for name in sorted(expected)}
        yield VerifiedCopy(folder=private, files=copied, sha256=combined_sha256(copied))
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _copy(source: Path, target: Path, expected: str | None, listing: str) -> str:
    try:
        sha = sha256_file(source, copy_to=target)
    except OSError as exc:
        raise UserError(f"cannot read {source}: {exc.strerror}") from None
    if expected is not None and sha != expected:
        raise UserError(f"{source} has sha256 {sha[:12]}, {listing} records {expected[:12]}; "
                        "the file changed after training")
    return sha
