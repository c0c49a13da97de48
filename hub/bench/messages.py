"""What the coordinator and its worker processes say to each other: one frozen dataclass per
message kind.

Commands go down each worker's pipe (``Coordinator.send_all``); events come up the shared queue,
each naming its ``worker``. Both are pickled on the way, as the ``multiprocessing`` transport
does. They are control messages, a handful per phase and per progress interval: nothing here is
made per message received.

The run, as messages: every worker sends :class:`Ready`; :class:`Connect` opens the sockets; every
worker sends :class:`Connected`; then the scenario runs (:class:`Start`, and its own:
:class:`Sent` / :class:`Drain`, :class:`Round` / :class:`RoundDone` / :class:`Finish`,
:class:`ChurnDone`); every worker sends its :class:`Result`; :class:`Stop` ends them. Workers
send :class:`Progress` every interval, and :class:`Failed` when they cannot go on.
A script run (``hub bench script``) ends its part with :class:`ScriptDone`, and tells the first
of each distinct error in it as a :class:`Notice`, which the coordinator prints once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.bench.script.totals import ScriptTotals
from hub.bench.stats import Tally

__all__ = [
    "ChurnDone",
    "Command",
    "Connect",
    "Connected",
    "Drain",
    "Event",
    "Failed",
    "Finish",
    "Notice",
    "Progress",
    "Ready",
    "Result",
    "Round",
    "RoundDone",
    "ScriptDone",
    "Sent",
    "Snapshot",
    "Start",
    "Stop",
]


# Commands: coordinator to worker


@dataclass(frozen=True, slots=True)
class Command:
    """What the coordinator tells every worker."""


@dataclass(frozen=True, slots=True)
class Connect(Command):
    """Open the sockets."""


@dataclass(frozen=True, slots=True)
class Start(Command):
    """The measured phase starts; ``t0_ns`` is its start on the coordinator's monotonic clock."""

    t0_ns: int


@dataclass(frozen=True, slots=True)
class Drain(Command):
    """fanout: sending is over; wait until ``total_sent`` messages reached each receiver."""

    total_sent: int


@dataclass(frozen=True, slots=True)
class Round(Command):
    """broadcast-all: send round ``round``'s message."""

    round: int


@dataclass(frozen=True, slots=True)
class Finish(Command):
    """The scenario's last step (broadcast-all: no more rounds; conns: the hold is over)."""


@dataclass(frozen=True, slots=True)
class Stop(Command):
    """Close the sockets and exit."""


# Events: worker to coordinator


@dataclass(frozen=True, slots=True)
class Event:
    """What a worker tells the coordinator; ``worker`` is its number."""

    worker: int


@dataclass(frozen=True, slots=True)
class Ready(Event):
    """The worker process is up."""

    pid: int
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A worker's counts at one moment."""

    connected: int = 0
    failed: int = 0
    disconnected: int = 0  # closed by the server or the network, not by the bench
    frames: int = 0
    payload_bytes: int = 0  # their payload bytes
    sent: int = 0
    unique: int = 0
    cpu_percent: float = 0.0
    loop_lag_ms: float = 0.0  # the interval's highest
    interval_hist: bytes = b""  # the interval's latencies (encoded HdrHistogram), or b""
    t_ns: int = 0


@dataclass(frozen=True, slots=True)
class Progress(Event):
    """Sent every --interval."""

    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The worker's sockets are open (or failed)."""

    connected: int
    receivers_connected: int
    failed: int
    connect_s: float
    rss_before: int
    rss_after: int


@dataclass(frozen=True, slots=True)
class Sent(Event):
    """fanout: the worker's publishers are done sending."""

    sent_by_pub: dict[int, int]
    sent_by_phase: list[int]  # per --rate-phases phase, over this worker's publishers


@dataclass(frozen=True, slots=True)
class RoundDone(Event):
    """broadcast-all: one round, as this worker saw it."""

    round: int
    received: int
    expected: int
    first_send_ns: int  # 0: this worker sent nothing
    last_arrival_ns: int
    hist: bytes


@dataclass(frozen=True, slots=True)
class ChurnDone(Event):
    """conns --churn: this worker's reconnections."""

    cycles: int
    failed: int
    hist: bytes  # handshake times, µs


@dataclass(frozen=True, slots=True)
class Result(Event):
    """The worker's totals, once its part of the scenario is over."""

    snapshot: Snapshot
    tally: Tally
    other_frames: int
    errors: dict[str, int]  # connect failures, by type
    hist: bytes  # the run's latencies (encoded HdrHistogram), or b""
    pid: int
    rss_bytes: int
    cpu_s: float
    cpu_percent_max: float
    cpu_percent_phase: float
    receivers: int
    receivers_connected: int = 0
    foreign: int = 0  # bench messages of another run
    loop_lag: dict[str, float] = field(default_factory=dict)  # max_ms, mean_ms, p99_ms
    run_wait_percent_phase: float = 0.0  # waiting for a CPU, in % of the measured phase
    phase_s: float = 0.0  # the measured phase's length


@dataclass(frozen=True, slots=True)
class Failed(Event):
    """The worker failed; ``message`` says how."""

    message: str


@dataclass(frozen=True, slots=True)
class ScriptDone(Event):
    """script: this worker's VUs are done; their exact counts and trends."""

    totals: ScriptTotals


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something to print once per ``key`` over all workers (a script's distinct error)."""

    key: str
    text: str
