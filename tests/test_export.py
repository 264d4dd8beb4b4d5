"""`icl-gen generate --format hf`: a save_to_disk DatasetDict with a hub card, readable by a stock lm-eval task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from icl_generalization.cli import main
from icl_generalization.core.paths import tasks_path
from icl_generalization.data.families import FAMILIES
from icl_generalization.data.load import get_dataset

FAMILY = "simple_reversal"


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / FAMILY
    assert main(["generate", FAMILY, "--format", "hf", "--out", str(out)]) == 0
    return out


def test_folder_loads_back_with_every_record(hf_folder: Path) -> None:
    import datasets

    ds = get_dataset(FAMILY)
    loaded = datasets.load_from_disk(str(hf_folder))
    assert list(loaded) == ["train", *ds.splits]
    assert loaded["train"]["text"] == [d.text for d in ds.train]
    for split in ds.splits:
        items = ds.items(split)
        rows = loaded[split].to_list()
        assert [(r["id"], r["prompt"], r["choices"], r["gold"]) for r in rows] == [
            (i.id, i.prompt, list(i.choices), list(i.gold)) for i in items]
        assert [json.loads(r["meta"]) for r in rows] == [dict(i.meta) for i in items]


def test_card_front_matter_follows_the_hub_convention(hf_folder: Path) -> None:
    from huggingface_hub import DatasetCard

    ds = get_dataset(FAMILY)
    card = DatasetCard.load(hf_folder / "README.md").data.to_dict()
    assert card["license"] == "apache-2.0"
    assert (card["fingerprint"], card["generator_version"]) == (ds.fingerprint(), ds.generator_version)
    assert card["generator"].startswith("icl-generalization ")
    info = {c["config_name"]: c for c in card["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in info["questions"]["splits"]} == {
        s: len(ds.items(s)) for s in ds.splits}
    assert info["documents"]["splits"] == [{"name": "train", "num_bytes": 0, "num_examples": len(ds.train)}]
    assert {f["name"] for f in info["questions"]["features"]} >= {"prompt", "choices", "gold"}
    # The configs' data files are the folders save_to_disk wrote, so the folder is a dataset repository as is.
    for config in card["configs"]:
        for entry in config["data_files"]:
            assert list(hf_folder.glob(entry["path"])), entry


def _docs(manager: Any, name: str) -> list[tuple[str, list[str], Any]]:
    task = manager.load([name])["tasks"][name]
    return [(task.doc_to_text(d), task.doc_to_choice(d), task.doc_to_target(d)) for d in task.test_docs()]


def test_stock_arrow_task_gives_the_same_prompts_as_the_package(hf_folder: Path, tmp_path: Path,
                                                                isolated_cache: Path) -> None:
    from lm_eval.tasks import TaskManager

    (split,) = get_dataset(FAMILY).splits
    # A task a user writes without the package: lm-eval's own `arrow` loader over the exported files.
    (tmp_path / "stock.yaml").write_text(f"""task: stock_{FAMILY}
dataset_path: arrow
dataset_kwargs:
  data_files:
    test: {hf_folder / split}/*.arrow
test_split: test
output_type: multiple_choice
doc_to_text: prompt
doc_to_choice: choices
doc_to_target: gold
target_delimiter: ''
metric_list:
  - metric: acc
""")
    stock = _docs(TaskManager(include_path=str(tmp_path), include_defaults=False), f"stock_{FAMILY}")
    ours = _docs(TaskManager(include_path=str(tasks_path()), include_defaults=False), f"icl_gen_{FAMILY}_{split}")
    assert len(stock) == len(get_dataset(FAMILY).items(split)) > 0
    assert stock == ours


def test_every_family_exports(tmp_path: Path) -> None:
    assert main(["generate", "all", "--format", "hf", "--out", str(tmp_path)]) == 0
    # Beside the families: the output claim's hidden marker (README, Safety).
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(FAMILIES)
