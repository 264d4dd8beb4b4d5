"""Every family: deterministic, pinned, the study's sizes, configs that name their bad field; the registry drives
every stage; check-data refuses corrupted folders on one line."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from icl_generalization.analysis.leaderboard import Cell, Column, Leaderboard, Row
from icl_generalization.analysis.orderings import check_orderings
from icl_generalization.core.errors import UserError
from icl_generalization.data.checkers import check_dataset
from icl_generalization.data.export import to_hf
from icl_generalization.data.families import FAMILIES, build
from icl_generalization.data.family import Claim, FamilySpec
from icl_generalization.data.records import Dataset, TestItem, TrainDoc, chance_rate, read_dataset
from icl_generalization.data.writing import write_dataset
from icl_generalization.study.presets import PRESETS
from icl_generalization.tasks import taskpack

# Changing a generator changes these on purpose: bump its GENERATOR_VERSION and the task metadata version.
PINNED = {
    "reversal_curse": "de4023d031de6b1fc7497b2848cf6cfd6c9c5f929b2fdc06a8d362c7f9d3704a",
    "simple_reversal": "839846ce78da2709a581241cee02d813f6dfa7646ff7255aef9b224d3d8e77f4",
    "syllogism": "093f739afc997c7d7bdc3c1959626c0894d787a02a48a25a75477a942d784c30",
    "semantic": "18a5625b6b821c315913f2c2d867c59a3ffe068a5397456a0096b086d83d173b",
    "process": "7a0cc15b572766142d3e0d32723825305c966f5f6f1588f2ef4abd122e8cce9d",
}
COUNTS = {  # (training documents, {split: items})
    "simple_reversal": (1000, {"reversal": 100}),
    "syllogism": (169, {"conclusion": 69, "balanced": 100}),
    # Split sizes are upper bounds: no word may be the answer to more than two items of a split.
    "semantic": (2200, {"rephrase": 200, "reversal": 199, "syllogism": 151, "category_holdout": 76}),
    "process": (328, {"rule": 40, "held_out": 80}),
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
    ("process", "n_atoms", 18), ("process", "phrasings", 4), ("process", "items_per_combination", 0),
])
def test_bad_config_names_its_field(family: str, field: str, value: int) -> None:
    with pytest.raises(UserError, match=field):
        build(family, overrides={field: value})


def test_configurable_sizes() -> None:
    assert len(build("simple_reversal", overrides={"n_facts": 7, "articles_per_fact": 3}).train) == 21
    small = build("syllogism", overrides={"n_items": 12, "n_balanced": 15})
    assert (len(small.items("conclusion")), len(small.items("balanced"))) == (12, 15)


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


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_declared_chance_is_the_default_datasets(family: str) -> None:
    ds = build(family)
    assert {s: round(chance_rate(ds.items(s)), 3) for s in ds.splits} == FAMILIES[family].chance


def test_config_overrides_are_validated_by_type_and_name_the_field() -> None:
    with pytest.raises(UserError, match=r"syllogism: n_items: expected a valid integer \(got '5'\)"):
        build("syllogism", overrides={"n_items": "5"})
    with pytest.raises(UserError, match=r"syllogism: n_itemz: unknown field \(fields: n_items, n_balanced\)"):
        build("syllogism", overrides={"n_itemz": 5})
    with pytest.raises(UserError, match=r"n_facts: expected a valid integer \(got True\)"):
        build("simple_reversal", overrides={"n_facts": True})


# --- the registry drives every stage: a family registered in one place shows up everywhere -----------------


@dataclass(frozen=True)
class ToyConfig:
    n_items: int = 2


def _toy_generate(config: ToyConfig, rng: random.Random, seed: int) -> Dataset:
    train = (TrainDoc(id="d0", text="Toys are fun."),)
    test = tuple(TestItem(id=f"q-{i}", split="q", prompt="Toys are", choices=(" fun.", " dull."), gold=(0,),
                          needs=(("d0",),)) for i in range(config.n_items))
    return Dataset(family="toy", generator_version="0", seed=seed, config={"n_items": config.n_items},
                   train=train, test=test)


TOY = FamilySpec(
    name="toy", generator_version="0", task_version=3.0, splits=("q",), inference_splits=frozenset(),
    reversal_splits=frozenset(), sweep_split="q", chance={"q": 0.5}, description="a test family", config_cls=ToyConfig,
    generate=_toy_generate, checker=lambda ds: [f"{t.id}: toy gold" for t in ds.test if t.gold != (0,)],
    cluster_key=lambda item: item.id,
    claims=(Claim("q", "ICL", ">", "FT"),), preset_sizes={"paper": {"n_items": 3}},
)


def test_a_family_registered_once_reaches_task_pack_presets_orderings_and_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FAMILIES, "toy", TOY)
    files = taskpack.render()
    assert {"toy/icl_gen_toy_q.yaml", "toy/icl_gen_toy_q_icl.yaml", "toy/icl_gen_toy_icl_sweep.yaml",
            "toy/_iclgen_toy.yaml"} <= set(files)
    assert "version: 3.0" in files["toy/_iclgen_toy.yaml"] and "iclgen_toy" in files["_iclgen.yaml"]
    assert PRESETS["paper"].families["toy"].data_config == {"n_items": 3}
    assert "toy" not in PRESETS["smoke"].families
    columns = (Column("toy", "q"),)
    rows = (Row("m", None, "ICL"), Row("m", "ft", "FT"))
    cells = {(row, columns[0]): Cell(v, 0.01, 100, "t", "run") for row, v in zip(rows, (0.9, 0.6), strict=True)}
    board = Leaderboard(metric="acc", rows=rows, columns=columns, cells=cells, chance={columns[0]: 0.5},
                        fingerprints={"toy": "f"}, runs=())
    assert [(v["family"], v["claim"], v["holds"]) for v in check_orderings(board)] == [("toy", "ICL > FT", True)]
    ds = build("toy", overrides=PRESETS["paper"].families["toy"].data_config)
    assert len(ds.test) == 3 and check_dataset(ds) == []
    assert check_dataset(dataclasses.replace(ds, test=(dataclasses.replace(ds.test[0], gold=(1,)),))) == [
        "q-0: toy gold"]


def test_a_family_declaration_that_contradicts_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="sweep split 'x', claim on split 'z' does not match its splits"):
        dataclasses.replace(TOY, sweep_split="x", claims=(Claim("z", "ICL", ">", "FT"),))
    with pytest.raises(ValueError, match="preset paper: toy: n_itemz: unknown field"):
        dataclasses.replace(TOY, preset_sizes={"paper": {"n_itemz": 3}})


# --- check-data: a corrupted dataset folder is one line, never a traceback -----------------------------------


def _check_data(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "icl_generalization.cli", "check-data", str(folder)],
                          capture_output=True, text=True)


def _unpinned(folder: Path) -> None:
    """Drop the recorded fingerprint, so the corruption reaches the checkers instead of the fingerprint check."""
    meta = json.loads((folder / "dataset.json").read_text())
    del meta["fingerprint"]
    (folder / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("name", "corrupt"), [
    ("graph.json", "{not json"),
    ("graph.json", '{"templates": 5, "facts": [], "categories": [], "holdouts": []}'),
    ("test.jsonl", '{"id": "x", "split": "rephrase", "prompt": 5, "choices": [" a", " b"], "gold": [0]}\n'),
    ("test.jsonl", "[1, 2]\n"),
    ("test.jsonl", ""),
])
def test_check_data_refuses_a_corrupted_file_on_one_line(tmp_path: Path, name: str, corrupt: str) -> None:
    folder = tmp_path / "semantic"
    write_dataset(build("semantic", overrides={"n_documents": 300, "rephrase_items": 5, "reversal_items": 5,
                                               "syllogism_items": 5, "holdout_categories": 2}), folder)
    _unpinned(folder)
    (folder / name).write_text(corrupt)
    result = _check_data(folder)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("icl-gen: error:")


def test_the_family_docs_list_every_registered_family_and_split() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "families.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| ")}
    for family in FAMILIES.values():
        assert family.name in rows and all(split in rows[family.name] for split in family.splits), family.name
        assert all(f"**{s}**" in rows[family.name] for s in family.inference_splits), family.name
