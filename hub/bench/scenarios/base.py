"""What a scenario is: one class per scenario that holds both halves of it, the worker's
(``play``: what each worker process does with its sockets) and the coordinator's
(``coordinate``: how the run is paced and what it adds to the report). Each half sees its
process through ``context.py``'s narrow sides, never the coordinator or the worker themselves.

A scenario object lives in each process: the coordinator makes one, and each worker makes
its own, so worker-side state (what it sent, per-round arrivals) stays an attribute.
"""

from __future__ import annotations

from typing import ClassVar

from hub.bench import header as hdr
from hub.bench.config import RunConfig
from hub.bench.messages import Start
from hub.bench.scenarios.context import CoordinatorSide, Outcome, WorkerSide
from hub.bench.sockets import Publisher, Receiver

__all__ = ["REPLY_GRACE_S", "Scenario"]

#: How long the coordinator waits for a worker's answer past the run's own duration.
REPLY_GRACE_S = 30.0


class Scenario:
    """The default of each hook is what most scenarios want."""

    name: ClassVar[str]

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    # The worker's half

    def channel_of(self, index: int) -> str:
        """The channel of receiver ``index``."""
        config = self.config
        if config.num_channels <= 1:
            return config.channel
        return f"{config.channel}-{index % config.num_channels}"

    def bodies(self) -> tuple[bytes, ...]:
        """What follows the header in each message, in turn: the --payload-file lines, or
        zeros up to --size."""
        config = self.config
        if config.payloads:
            return config.payloads
        return (b"\x00" * (max(config.size, hdr.HEADER_SIZE) - hdr.HEADER_SIZE),)

    def num_streams(self) -> int:
        """How many publishers each receiver hears (numbered 0 .. n-1)."""
        return 1

    def prepare_receiver(self, worker: WorkerSide, receiver: Receiver) -> None:
        """Called for each receiver before it connects."""

    def publishers(self, worker: WorkerSide) -> list[tuple[int, str, Publisher]]:
        """(socket index, URL, publisher) of this worker's publishers."""
        return []

    def own_sockets(self) -> int:
        """Sockets the scenario opened itself and holds open now (a script's VUs'), beyond
        the worker's receivers and publishers."""
        return 0

    #: Whether the coordinator reads the server's memory before the sockets connect.
    measures_server_memory: ClassVar[bool] = False

    @property
    def has_interval_latency(self) -> bool:
        """Whether progress events carry the interval's latency histogram."""
        return True

    async def play(self, worker: WorkerSide) -> None:
        """Run the scenario on the connected sockets, from ``start`` on."""
        raise NotImplementedError

    # The coordinator's half

    def coordinate(self, coordinator: CoordinatorSide, t0_ns: int) -> Outcome:
        """Pace the measured phase; return what it adds to the report."""
        coordinator.send_all(Start(t0_ns))
        return Outcome()

    def expected(self, outcome: Outcome, sent: int, receivers: int) -> int:
        """How many messages the receivers should get in all (0: none are counted)."""
        return 0
