"""The settings of one bench run, shared by the coordinator and its worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.bench.script.spec import ScriptSpec
from hub.bench.target import Handshake
from hub.bench.thresholds import Threshold

__all__ = ["AUTO_CLIENT", "CLIENTS", "RunConfig"]

CLIENTS = ("auto", "lean", "picows")
# What --client auto picks for the receivers (see docs/bench.md, "Client choice").
AUTO_CLIENT = {
    "conns": "lean",
    "broadcast-all": "lean",
    "fanout": "lean",
    "echo": "lean",
    "script": "lean",
}


@dataclass(frozen=True)
class RunConfig:
    """Everything a worker needs to play its part. Picklable: it crosses process boundaries."""

    scenario: str  # fanout | echo | conns | broadcast-all | script
    urls: list[str]
    procs: int
    # Sockets
    num_sockets: int  # receivers: subscribers, echo clients, idle sockets, broadcast targets
    num_publishers: int = 0
    channel: str = "bench"
    num_channels: int = 1
    source_addrs: list[str] = field(default_factory=list)
    concurrency: int = 256
    connect_timeout_s: float = 10.0
    # Traffic
    size: int = 64
    rate: float | None = 1000.0  # messages/s over all publishers (echo: clients); None: max
    window: int = 64
    messages: int | None = None  # fanout: in all; echo: per client
    duration_s: float = 10.0
    drain_timeout_s: float = 5.0
    # broadcast-all
    rounds: int = 1
    round_timeout_s: float = 10.0
    # Reporting
    interval_s: float = 0.5
    # The receivers' WebSocket client: lean (hub/bench/lean.py), picows, or auto (per scenario)
    client: str = "auto"
    # Handshake headers and TLS (hub/bench/target.py)
    handshake: Handshake = field(default_factory=Handshake)
    # conns: sockets closed and reopened per second over all processes (0: none)
    churn_rate: float = 0.0
    # --payload-file: the bodies sent in turn after the header (empty: --size zero bytes)
    payloads: tuple[bytes, ...] = ()
    # Connection ramp phases (hub/bench/ramp.py); empty: connect as fast as --concurrency allows
    ramp: tuple[tuple[int, int, float], ...] = ()
    # The protocol spoken on each socket (hub/bench/protocols/): raw, hub.v1 or socketio
    protocol: str = "raw"
    event: str = "message"  # socketio: the event each message is sent as
    join_event: str | None = None  # socketio: emitted with the channel to join it, acked
    # fanout: publish-rate phases (hub/bench/ramp.py), replacing --rate and --duration
    rate_phases: tuple[tuple[float, float], ...] = ()
    # Random per run, in every message header: another run's messages are told apart.
    run_id: int = 0
    # Thresholds: the run fails when one is crossed (None: not checked)
    max_p99_ms: float | None = None
    max_loss: float | None = None  # a fraction of the expected messages
    min_connected: float | None = None  # a fraction of the target sockets
    # --threshold expressions (hub/bench/thresholds.py)
    thresholds: tuple[Threshold, ...] = ()
    # hub bench script: the script's text, its data and its executor (hub/bench/script/)
    script: ScriptSpec | None = None

    def receiver_client(self) -> str:
        """The client the receivers use: ``auto`` picks what measured best for the scenario."""
        if self.client != "auto":
            return self.client
        return AUTO_CLIENT.get(self.scenario, "lean")
