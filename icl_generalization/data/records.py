"""The record schema shared by every dataset family, its JSONL form, and the canonical fingerprint.

A dataset on disk is a folder::

    train.jsonl       one TrainDoc per line
    test.jsonl        one TestItem per line
    dataset.json      family, generator version, seed, config, source, fingerprint
    graph.json        the underlying knowledge graph, for families that have one
    README.md         the dataset card (human-readable summary)

The fingerprint is a sha256 over canonical JSON (sorted keys, no whitespace) of everything that decides
what a model sees or is scored on, so two folders with the same fingerprint evaluate identically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, StrictInt, StrictStr, TypeAdapter, ValidationError

from icl_generalization.core.digest import canonical_json, sha256_parts
from icl_generalization.core.errors import DataError
from icl_generalization.core.validation import describe

TRAIN_FILE = "train.jsonl"
TEST_FILE = "test.jsonl"
META_FILE = "dataset.json"
GRAPH_FILE = "graph.json"
CARD_FILE = "README.md"
_R = TypeVar("_R")


@dataclass(frozen=True)
class TrainDoc:
    """One training document: what finetuning trains on and what an in-context prompt concatenates."""

    id: str
    text: str
    # Names of the (fictional or nonsense) entities the document is about: augmentation and
    # the tests use them to check that outputs talk about the right things.
    entities: tuple[str, ...] = ()
    # "document" for the study's articles; "qa" for question-answer examples mixed into training.
    kind: str = "document"

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("TrainDoc.id must be non-empty")
        if not self.text.strip():
            raise ValueError(f"TrainDoc {self.id!r}: text must be non-empty")


@dataclass(frozen=True)
class TestItem:
    """A multiple-choice question scored by likelihood: the options are never shown in the prompt."""

    id: str
    split: str
    prompt: str
    # Each choice is a continuation of ``prompt`` and starts with the space that separates it
    # (lm-eval joins prompt and choice with target_delimiter, which the tasks set to "").
    choices: tuple[str, ...]
    # Indices into ``choices`` of every correct option (several when several statements are valid).
    gold: tuple[int, ...]
    # The facts the question needs: one tuple per fact, holding the ids of the training documents that
    # state it. An in-context prompt must contain at least one document of every tuple.
    needs: tuple[tuple[str, ...], ...] = ()
    entities: tuple[str, ...] = ()
    # Free-form provenance (syllogistic form, relation, chain length...), never used for scoring.
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise ValueError(f"TestItem {self.id!r}: needs at least two choices")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"TestItem {self.id!r}: duplicate choices {self.choices}")
        if not self.gold or any(not 0 <= g < len(self.choices) for g in self.gold):
            raise ValueError(f"TestItem {self.id!r}: gold {self.gold} out of range for {len(self.choices)} choices")


@dataclass(frozen=True)
class Dataset:
    family: str
    generator_version: str
    seed: int
    config: Mapping[str, Any]
    train: tuple[TrainDoc, ...]
    test: tuple[TestItem, ...]
    graph: Mapping[str, Any] | None = None
    # "generated" or where an import came from (for example "berglund:/path/to/folder").
    source: str = "generated"

    @property
    def splits(self) -> list[str]:
        """Test splits in first-seen order."""
        return list(dict.fromkeys(item.split for item in self.test))

    def items(self, split: str) -> list[TestItem]:
        return [item for item in self.test if item.split == split]

    def fingerprint(self) -> str:
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        # Records are immutable, so the digest is computed once (cached_property writes to __dict__,
        # which a frozen dataclass allows).
        return fingerprint(self)

    def doc_index(self) -> dict[str, TrainDoc]:
        return {doc.id: doc for doc in self.train}


def chance_rate(items: Iterable[TestItem]) -> float:
    """Expected accuracy of a uniform guess over these items (an item with several golds counts each)."""
    rates = [len(item.gold) / len(item.choices) for item in items]
    return sum(rates) / len(rates)


def jsonable(record: TrainDoc | TestItem) -> dict[str, Any]:
    # asdict turns tuples into lists: the canonical JSON is the same as what is written to disk.
    plain: dict[str, Any] = json.loads(canonical_json(asdict(record)))
    return plain


def fingerprint(ds: Dataset) -> str:
    """sha256 over the canonical JSON of family, generator version, records and graph."""
    def parts() -> Iterator[bytes]:
        yield canonical_json({"family": ds.family, "generator_version": ds.generator_version}).encode()
        for doc in ds.train:
            yield b"\ntrain:" + canonical_json(jsonable(doc)).encode()
        for item in ds.test:
            yield b"\ntest:" + canonical_json(jsonable(item)).encode()
        if ds.graph is not None:
            yield b"\ngraph:" + canonical_json(ds.graph).encode()

    return sha256_parts(parts())


def iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("path:line", object)`` for each non-blank line of a JSONL file.

    A line that is not a JSON object is a DataError naming the file and line, so every reader of JSONL
    (datasets, lm-eval sample logs, augmentation corpora) reports bad input the same way.
    """
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
                yield where, row
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse a JSONL file; a malformed line is a DataError naming the file and line number."""
    return [row for _, row in iter_jsonl(path)]


# Field types are checked, not only presence: a prompt that is a number would otherwise pass reading and
# crash a checker later with a traceback instead of naming the file and record.
_TRAIN_DOC: TypeAdapter[TrainDoc] = TypeAdapter(TrainDoc)
_TEST_ITEM: TypeAdapter[TestItem] = TypeAdapter(TestItem)


def _record(adapter: TypeAdapter[_R], row: dict[str, Any], where: str, what: str) -> _R:
    try:
        return adapter.validate_python(row, strict=False)
    except ValidationError as exc:
        raise DataError(describe(exc, f"{where}: not a {what}")) from None


def _train_doc(row: dict[str, Any], where: str) -> TrainDoc:
    return _record(_TRAIN_DOC, row, where, "training document")


def _test_item(row: dict[str, Any], where: str) -> TestItem:
    return _record(_TEST_ITEM, row, where, "test item")


class _DatasetMeta(BaseModel):
    """What :func:`read_dataset` reads of ``dataset.json`` (``counts`` and ``splits`` are for people)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    family: StrictStr
    generator_version: StrictStr
    seed: StrictInt
    config: dict[str, JsonValue] = {}
    source: StrictStr = "generated"
    fingerprint: StrictStr | None = None


def read_dataset(folder: Path) -> Dataset:
    """Read a folder written by :func:`write_dataset`, checking its fingerprint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"dataset folder not found: {folder}")
    if not (folder / META_FILE).is_file():
        raise DataError(f"{folder}: no {META_FILE}; not a dataset folder written by icl-gen")
    try:
        meta = _DatasetMeta.model_validate_json((folder / META_FILE).read_bytes())
    except ValidationError as exc:
        raise DataError(describe(exc, f"{folder / META_FILE}: not a dataset description")) from None
    train = [_train_doc(r, f"{folder / TRAIN_FILE} record {i + 1}")
             for i, r in enumerate(read_jsonl(folder / TRAIN_FILE))]
    test = [_test_item(r, f"{folder / TEST_FILE} record {i + 1}")
            for i, r in enumerate(read_jsonl(folder / TEST_FILE))]
    graph_path = folder / GRAPH_FILE
    try:
        graph = json.loads(graph_path.read_text(encoding="utf-8")) if graph_path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{graph_path}: not valid JSON ({exc})") from None
    if graph is not None and not isinstance(graph, dict):
        raise DataError(f"{graph_path}: expected a JSON object, got {type(graph).__name__}")
    ds = Dataset(family=meta.family, generator_version=meta.generator_version, seed=meta.seed, config=meta.config,
                 train=tuple(train), test=tuple(test), graph=graph, source=meta.source)
    expected = meta.fingerprint
    if expected and expected != ds.fingerprint():
        raise DataError(f"{folder}: fingerprint mismatch (recorded {expected[:12]}, contents {ds.fingerprint()[:12]});"
                        " the files were edited after generation")
    return ds
