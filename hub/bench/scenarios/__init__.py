"""The bench's scenarios, one module each; a new one is one small module and a line here."""

from __future__ import annotations

from hub.bench.config import RunConfig
from hub.bench.scenarios.base import Scenario
from hub.bench.scenarios.broadcast_all import BroadcastAll
from hub.bench.scenarios.conns import Conns
from hub.bench.scenarios.echo import Echo
from hub.bench.scenarios.fanout import Fanout
from hub.bench.scenarios.script import Script

__all__ = ["SCENARIOS", "Scenario", "scenario_for"]

SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls for cls in (Fanout, Echo, Conns, BroadcastAll, Script)
}


def scenario_for(config: RunConfig) -> Scenario:
    return SCENARIOS[config.scenario](config)
