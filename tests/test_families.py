"""Every family: deterministic, pinned, the study's sizes, configs that name their bad field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from icl_generalization.core.errors import UserError
from icl_generalization.data.export import to_hf
from icl_generalization.data.families import FAMILIES, build
from icl_generalization.data.records import read_dataset, write_dataset

# Changing a generator changes these on purpose: bump its GENERATOR_VERSION and the task metadata version.
PINNED = {
    "simple_reversal": "6a1c2bd19818c4f133b56ff752e2daa4e7a08a1030cf33b39fb697a7760fec73",
    "syllogism": "46211573acc1ccc598f8370f028f49d5c54df78510be5280a85ddeb54970b583",
    "semantic": "a256497ceb71e85a4459e64fbed6c048d07ac35fddc7e478a40ae581dbd1b788",
}
COUNTS = {  # (training documents, {split: items})
    "simple_reversal": (1000, {"reversal": 100}),
    "syllogism": (69, {"conclusion": 69}),
    # Split sizes are upper bounds: no word may be the answer to more than two items of a split.
    "semantic": (2200, {"rephrase": 200, "reversal": 199, "syllogism": 151, "category_holdout": 76}),
}


@pytest.mark.parametrize("family", sorted(PINNED))
def test_pinned_fingerprint(family: str) -> None:
    assert build(family).fingerprint() == PINNED[family]


@pytest.mark.parametrize("family", sorted(PINNED))
def test_same_seed_gives_byte_identical_files(family: str, tmp_path: Path) -> None:
    write_dataset(build(family, seed=5), tmp_path / "a")
    write_dataset(build(family, seed=5), tmp_path / "b")
    for name in ("train.jsonl", "test.jsonl", "dataset.json", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert build(family, seed=6).fingerprint() != build(family, seed=5).fingerprint()
    assert read_dataset(tmp_path / "a").fingerprint() == build(family, seed=5).fingerprint()


@pytest.mark.parametrize("family", sorted(COUNTS))
def test_counts_match_the_study(family: str) -> None:
    ds = build(family)
    n_train, splits = COUNTS[family]
    assert len(ds.train) == n_train
    assert {s: len(ds.items(s)) for s in ds.splits} == splits
    assert tuple(ds.splits) == FAMILIES[family].splits


@pytest.mark.parametrize(("family", "field", "value"), [
    ("simple_reversal", "n_facts", 0), ("simple_reversal", "articles_per_fact", 99),
    ("syllogism", "n_items", 0), ("semantic", "n_documents", 10), ("semantic", "holdout_categories", 0),
])
def test_bad_config_names_its_field(family: str, field: str, value: int) -> None:
    with pytest.raises(UserError, match=field):
        build(family, overrides={field: value})


def test_configurable_sizes() -> None:
    assert len(build("simple_reversal", overrides={"n_facts": 7, "articles_per_fact": 3}).train) == 21
    assert len(build("syllogism", overrides={"n_items": 12}).test) == 12


@pytest.mark.parametrize("family", sorted(COUNTS))
def test_to_hf(family: str) -> None:
    ds = build(family)
    hf = to_hf(ds)
    assert set(hf) == {"train", *ds.splits}
    assert hf["train"].num_rows == len(ds.train)
    first = ds.test[0]
    row = hf[first.split][0]
    assert (row["prompt"], tuple(row["choices"]), tuple(row["gold"])) == (first.prompt, first.choices, first.gold)


def test_generate_all_and_check_data_cli(tmp_path: Path) -> None:
    env_python = [sys.executable, "-m", "icl_generalization.cli"]
    gen = subprocess.run([*env_python, "generate", "all", "--out", str(tmp_path)], capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    for family in FAMILIES:
        assert (tmp_path / family / "dataset.json").is_file()
    assert (tmp_path / "semantic" / "graph.json").is_file()
    check = subprocess.run([*env_python, "check-data", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == len(FAMILIES)
    missing = subprocess.run([*env_python, "check-data", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 2 and "icl-gen: error:" in missing.stderr
