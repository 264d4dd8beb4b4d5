"""What a control declares, and the shipped fact set it reads: a :class:`ControlSpec` and a :class:`ControlSet`.

A control is not a dataset family: it has no training documents, no in-context or finetuning splits, no
generator config, preset sizes or claims, and it is not generated at run time. It is a fixed set of
closed-book questions about knowledge the base model already has, built once from a well-kept offline source
by a script under ``scripts/`` and shipped inside the package (``items.jsonl`` and ``source.json``, the source
record it was built from: the source's name and version and every fact the checker needs). Evaluated beside
each condition, it shows what finetuning cost (forgetting) as well as what it gained. The ``Family`` protocol
would need a special case for nearly every member, so controls are their own small concept.

``source.json`` records the sha256 of ``items.jsonl``; the loader refuses a set whose items were edited after
they were built, and the control's own checker re-derives every gold answer from the source record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, JsonValue, StrictStr, TypeAdapter, ValidationError

from icl_generalization.core.digest import canonical_json, sha256_of, sha256_parts
from icl_generalization.core.errors import DataError
from icl_generalization.core.validation import describe
from icl_generalization.data.records import TestItem, chance_rate, iter_jsonl, jsonable

ITEMS_FILE = "items.jsonl"
SOURCE_FILE = "source.json"
_TEST_ITEM: TypeAdapter[TestItem] = TypeAdapter(TestItem)


class SourceHeader(BaseModel):
    """What every control's ``source.json`` states about itself; each control's checker reads the rest."""

    model_config = ConfigDict(extra="allow", frozen=True)

    source: StrictStr  # the package (or data set) the facts come from
    version: StrictStr  # its exact version
    upstream: StrictStr  # where that package took the facts from
    license: StrictStr
    items_sha256: StrictStr  # of items.jsonl as built; an edited file is refused


@dataclass(frozen=True)
class ControlSet:
    """A control's questions and the source record they were built from."""

    name: str
    items: tuple[TestItem, ...]
    source: Mapping[str, JsonValue]

    @property
    def header(self) -> SourceHeader:
        return SourceHeader.model_validate(self.source)

    @property
    def chance(self) -> float:
        return chance_rate(self.items)

    def fingerprint(self) -> str:
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        # The source record is part of what decides the gold answers, so it is part of the fingerprint.
        def parts() -> list[bytes]:
            head = [canonical_json({"control": self.name, "source": self.source}).encode()]
            return head + [b"\ntest:" + canonical_json(jsonable(item)).encode() for item in self.items]

        return sha256_parts(parts())


def read_control_set(name: str, folder: Path) -> ControlSet:
    """Read and validate a control's shipped files; an edited or malformed file is a DataError naming it."""
    source_path, items_path = folder / SOURCE_FILE, folder / ITEMS_FILE
    try:
        source_text = source_path.read_text(encoding="utf-8")
        header = SourceHeader.model_validate_json(source_text)
    except OSError as exc:
        raise DataError(f"{source_path}: cannot be read ({exc})") from None
    except ValidationError as exc:
        raise DataError(describe(exc, f"{source_path}: not a control's source record")) from None
    items_sha = sha256_of(items_path.read_bytes()) if items_path.is_file() else None
    if items_sha != header.items_sha256:
        raise DataError(f"{items_path}: sha256 {str(items_sha)[:12]} is not the {header.items_sha256[:12]} its "
                        f"source record names; the items were edited after they were built")
    items = []
    for where, row in iter_jsonl(items_path):
        try:
            items.append(_TEST_ITEM.validate_python(row, strict=False))
        except ValidationError as exc:
            raise DataError(describe(exc, f"{where}: not a test item")) from None
    source: dict[str, JsonValue] = TypeAdapter(dict[str, JsonValue]).validate_json(source_text)
    return ControlSet(name=name, items=tuple(items), source=source)


@dataclass(frozen=True)
class ControlSpec:
    name: str
    # Changes whenever the shipped set or its prompts do, so `icl-gen compare` never puts two versions side by side.
    task_version: float
    description: str
    # The package holding ``items.jsonl`` and ``source.json`` (package data, so a wheel carries them).
    package: str
    # Re-derives every gold answer from the source record, sharing no code with the build script.
    checker: Callable[[ControlSet], list[str]]
    # The entity an item is about: questions about one entity stand or fall together (clustered errors).
    cluster_key: Callable[[TestItem], str]

    def load(self) -> ControlSet:
        return _load(self.name, self.package)

    def check(self, control_set: ControlSet) -> list[str]:
        return self.checker(control_set)

    def cluster_of(self, item: TestItem) -> str:
        return self.cluster_key(item)


@cache
def _load(name: str, package: str) -> ControlSet:
    return read_control_set(name, Path(str(resources.files(package))))
