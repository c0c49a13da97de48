"""What a scenario sees of the processes it runs in, and what it hands back.

A scenario never imports the coordinator or the worker: its coordinator half is handed a
:class:`CoordinatorSide`, its worker half a :class:`WorkerSide` (``Coordinator`` and ``Worker``
are both, structurally), and they talk in ``messages.py``'s dataclasses. The coordinator half
returns an :class:`Outcome`: what the scenario adds to the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from hub.bench.lean import Counters
from hub.bench.messages import Command, Event
from hub.bench.protocols.base import Adapter
from hub.bench.schema import Section
from hub.bench.server_memory import ServerMemoryOptions
from hub.bench.sockets import Receiver
from hub.bench.stats import LatencyRecorder

__all__ = ["CoordinatorSide", "Outcome", "WorkerSide"]

C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a scenario's coordinator half adds to the report (each field: the scenarios that
    set it)."""

    sent_by_pub: dict[int, int] | None = None  # fanout: messages sent per publisher id
    send_s: float | None = None  # fanout: how long the sending took
    sent_by_phase: list[int] = field(default_factory=list)  # fanout --rate-phases
    rounds: list[Section] | None = None  # broadcast-all: the report's ``rounds``
    churn: Section | None = None  # conns --churn: the report's ``churn``
    server_memory: Section | None = None  # conns: the report's ``server_memory``
    script: Section | None = None  # script: the report's ``script``
    #: script: figures of the report's sections that the scenario knows better (its VUs
    #: open their sockets during the run), by section
    overrides: dict[str, Section] = field(default_factory=dict)


class CoordinatorSide(Protocol):
    """The coordinator, as a scenario's coordinator half uses it."""

    @property
    def memory(self) -> ServerMemoryOptions: ...

    @property
    def server_rss_before(self) -> tuple[int | None, str]:
        """The server's memory before the sockets connected, and where it was read."""
        ...

    @property
    def num_connected(self) -> int: ...

    def send_all(self, command: Command) -> None: ...

    def gather(self, kind: type[E], timeout_s: float) -> dict[int, E]:
        """One ``kind`` event from every worker, by worker number."""
        ...

    def seconds_since_start(self) -> float: ...

    def set_phase(self, phase: str) -> None: ...

    def wait_progress(self, seconds: float) -> None:
        """Wait, handling progress events meanwhile."""
        ...


class WorkerSide(Protocol):
    """A worker process, as a scenario's worker half uses it."""

    @property
    def index(self) -> int: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def recorder(self) -> LatencyRecorder: ...

    @property
    def adapter(self) -> Adapter: ...

    @property
    def receivers(self) -> list[Receiver]: ...

    @property
    def receiver_indices(self) -> list[int]:
        """The socket numbers of ``receivers``."""
        ...

    def emit(self, event: Event) -> None: ...

    async def expect(self, *kinds: type[C]) -> C:
        """The next command of one of ``kinds`` (a ``Stop`` ends the worker)."""
        ...

    def measure_phase(self) -> Callable[[], None]: ...

    def new_receiver(self, index: int) -> tuple[str, Receiver]: ...

    def num_receivers_connected(self) -> int: ...

    async def drain(self, expected_unique: int) -> None: ...
