"""The package's one way to take a sha256: of a file (streamed), of bytes or text, of a sequence of parts,
of canonical JSON. Every fingerprint, checkpoint digest and cache key goes through here, so two spellings of
"the same" digest cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

_BLOCK = 1 << 20


def sha256_file(path: Path, copy_to: Path | None = None) -> str:
    """sha256 of a file, read in blocks (weights do not fit in memory twice).

    With ``copy_to`` the very bytes that are hashed are also written there: the copy is then known to be
    what the digest describes, however the source changes after it was read (no check-then-use race).
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as source:
        if copy_to is None:
            for block in iter(lambda: source.read(_BLOCK), b""):
                digest.update(block)
        else:
            with Path(copy_to).open("xb") as target:
                for block in iter(lambda: source.read(_BLOCK), b""):
                    digest.update(block)
                    target.write(block)
    return digest.hexdigest()


def sha256_of(data: bytes | str) -> str:
    """sha256 of bytes, or of text as UTF-8."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def sha256_parts(parts: Iterable[bytes]) -> str:
    """sha256 of the concatenated parts, without building the concatenation."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def canonical_json(obj: object) -> str:
    """One text per value: sorted keys, no whitespace, non-ASCII kept as is (dataset fingerprints pin this)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_json(obj: object) -> str:
    return sha256_of(canonical_json(obj))
