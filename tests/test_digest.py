"""The one digest helper: values pinned against hashlib and sha256sum's conventions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from icl_generalization.core.digest import canonical_json, sha256_file, sha256_json, sha256_of, sha256_parts

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_file_digest_is_streamed_and_copies_exactly_what_it_hashed(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    blob = bytes(range(256)) * 9000  # more than one read block
    source.write_bytes(blob)
    copy = tmp_path / "copy.bin"
    assert sha256_file(source) == sha256_file(source, copy_to=copy) == hashlib.sha256(blob).hexdigest()
    assert copy.read_bytes() == blob
    with pytest.raises(FileExistsError):  # never writes over a file that is already there
        sha256_file(source, copy_to=copy)


def test_bytes_text_parts_and_json() -> None:
    assert sha256_of(b"") == sha256_of("") == sha256_parts([]) == EMPTY
    assert sha256_of("é") == hashlib.sha256("é".encode()).hexdigest()
    assert sha256_parts([b"ab", b"c"]) == sha256_of("abc")
    assert canonical_json({"b": 1, "a": ["é", 2]}) == '{"a":["é",2],"b":1}'
    assert sha256_json({"b": 1, "a": ["é", 2]}) == sha256_of('{"a":["é",2],"b":1}')
