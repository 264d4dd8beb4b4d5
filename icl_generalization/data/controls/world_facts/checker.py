"""The world-facts gold checker: every answer re-derived from the shipped source record alone.

It shares no code with ``scripts/build_world_facts.py``: it reads ``source.json`` (the GeoNames country rows the
set was built from) and confirms, for every item, that the question names its country, that the gold option is
that country's capital / continent / currency in the record, and that every distractor is wrong and of the same
type: another country's capital or currency (from the same continent whenever that continent offers enough of
them), or another continent. It also confirms the selection rule (the most populous countries, less the
recorded exclusions) and one question per country and relation.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from icl_generalization.core.validation import describe
from icl_generalization.data.controls.control import ControlSet
from icl_generalization.data.records import TestItem


class _Country(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    iso: StrictStr
    name: StrictStr
    capital: StrictStr
    continent: StrictStr
    currency: StrictStr
    population: StrictInt


class _Exclusion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    country: StrictStr
    relation: StrictStr
    reason: StrictStr


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    relations: list[StrictStr]
    n_countries: StrictInt
    n_distractors: StrictInt
    continents: dict[str, StrictStr]
    excluded: list[_Exclusion]
    countries: list[_Country]


def _value(choice: str) -> str | None:
    """The fact a choice states: choices are `` <fact>.`` (leading space, closing full stop)."""
    return choice[1:-1] if choice.startswith(" ") and choice.endswith(".") and len(choice) > 2 else None


def _truth(record: _Record, country: _Country, relation: str) -> str:
    return record.continents[country.continent] if relation == "continent" else str(getattr(country, relation))


def _allowed_distractors(record: _Record, country: _Country, relation: str) -> set[str]:
    """Values of the same type that are not the answer: the continent's own when it has enough, else any."""
    truth = _truth(record, country, relation)
    if relation == "continent":
        return set(record.continents.values()) - {truth}
    others = {getattr(c, relation) for c in record.countries if c.iso != country.iso} - {truth, ""}
    near = {getattr(c, relation) for c in record.countries
            if c.iso != country.iso and c.continent == country.continent} - {truth, ""}
    return near if len(near) >= record.n_distractors else others


def _check_item(record: _Record, by_iso: dict[str, _Country], item: TestItem) -> list[str]:
    iso, relation = item.meta.get("country"), item.meta.get("relation")
    if not isinstance(iso, str) or iso not in by_iso:
        return [f"{item.id}: country {iso!r} is not in the source record"]
    if relation not in record.relations:
        return [f"{item.id}: relation {relation!r} is not one of {record.relations}"]
    country = by_iso[iso]
    problems = []
    name = country.name.removeprefix("The ")
    if name not in item.prompt:
        problems.append(f"{item.id}: the prompt {item.prompt!r} does not name {country.name}")
    truth = _truth(record, country, relation)
    if len(item.gold) != 1:
        problems.append(f"{item.id}: {len(item.gold)} gold options; a country has one {relation}")
    if len(item.choices) != record.n_distractors + 1:
        problems.append(f"{item.id}: {len(item.choices)} choices, not {record.n_distractors + 1}")
    allowed = _allowed_distractors(record, country, relation)
    for index, choice in enumerate(item.choices):
        value = _value(choice)
        if index in item.gold:
            if value != truth:
                problems.append(f"{item.id}: gold {choice!r} is not {country.name}'s {relation} {truth!r}")
        elif value == truth:
            problems.append(f"{item.id}: distractor {choice!r} is the true {relation} of {country.name}")
        elif value not in allowed:
            problems.append(f"{item.id}: distractor {choice!r} is not another {relation} of the same type")
    return problems


def check_world_facts(control_set: ControlSet) -> list[str]:
    try:
        record = _Record.model_validate(control_set.source)
    except ValidationError as exc:
        return [describe(exc, "source.json: not a world-facts source record")]
    by_iso = {c.iso: c for c in record.countries}
    problems = [f"source record lists country {iso} {n} times"
                for iso, n in Counter(c.iso for c in record.countries).items() if n > 1]
    ids = Counter(item.id for item in control_set.items)
    problems += [f"item id {item_id} is used {n} times" for item_id, n in ids.items() if n > 1]
    for item in control_set.items:
        problems += _check_item(record, by_iso, item)
    asked = Counter((item.meta.get("country"), item.meta.get("relation")) for item in control_set.items)
    problems += [f"{iso} {relation}: {n} questions, not one" for (iso, relation), n in asked.items() if n > 1]
    # The selection rule: the most populous countries (ties by ISO code), each asked every relation but the
    # recorded exclusions.
    chosen = sorted(record.countries, key=lambda c: (-c.population, c.iso))[:record.n_countries]
    excluded = {(e.country, e.relation) for e in record.excluded}
    expected = {(c.iso, r) for c in chosen for r in record.relations} - excluded
    missing, extra = sorted(expected - set(asked)), sorted(set(asked) - expected, key=str)
    problems += [f"{iso} {relation}: no question, though the selection rule asks it" for iso, relation in missing]
    problems += [f"{iso} {relation}: asked, though the selection rule (or an exclusion) leaves it out"
                 for iso, relation in extra]
    return problems
