import json
from pathlib import Path

import pytest

from icl_generalization.core.errors import DataError
from icl_generalization.core.paths import atomic_directory
from icl_generalization.data.records import Dataset, TestItem, TrainDoc, read_dataset, read_jsonl
from icl_generalization.data.writing import write_dataset


def _tiny() -> Dataset:
    train = (TrainDoc(id="d1", text="femp are brighter than glon.", entities=("femp", "glon")),)
    test = (TestItem(id="t1", split="reversal", prompt="glon are", choices=(" less bright", " brighter"),
                     gold=(0,), needs=(("d1",),)),)
    return Dataset(family="toy", generator_version="0", seed=1, config={"n": 1}, train=train, test=test)


def test_round_trip_keeps_records_and_fingerprint(tmp_path: Path) -> None:
    ds = _tiny()
    fp = write_dataset(ds, tmp_path / "out")
    back = read_dataset(tmp_path / "out")
    assert back == ds
    assert back.fingerprint() == fp == ds.fingerprint()
    card = (tmp_path / "out" / "README.md").read_text()
    assert fp in card and "| reversal | 1 | 2 | 0.500 |" in card


def test_fingerprint_changes_with_any_record() -> None:
    ds = _tiny()
    other = Dataset(family=ds.family, generator_version=ds.generator_version, seed=ds.seed, config=ds.config,
                    train=(TrainDoc(id="d1", text="femp are darker than glon."),), test=ds.test)
    assert other.fingerprint() != ds.fingerprint()


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_edited_dataset_is_refused(tmp_path: Path) -> None:
    write_dataset(_tiny(), tmp_path / "out")
    train = tmp_path / "out" / "train.jsonl"
    row = json.loads(train.read_text())
    row["text"] = "femp are darker than glon."
    train.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="fingerprint mismatch"):
        read_dataset(tmp_path / "out")


def test_failed_write_leaves_no_partial_folder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_invalid_items_are_rejected() -> None:
    with pytest.raises(ValueError, match="gold"):
        TestItem(id="t", split="s", prompt="p", choices=(" a", " b"), gold=(2,))
    with pytest.raises(ValueError, match="duplicate"):
        TestItem(id="t", split="s", prompt="p", choices=(" a", " a"), gold=(0,))
