"""The controller's side: the coordinator's workers, run on agents (``hub bench agent``).

:func:`connect_agents` opens and authenticates every agent before anything runs, so a wrong
token or a missing agent ends the run with nothing started anywhere. :func:`plan` gives each
agent its workers (their numbers are the run's, so each takes its sockets, publishers and VUs
as a local worker of that number would) and the run's config. :class:`AgentPool` is then the
coordinator's :class:`~hub.bench.pool.WorkerPool`: commands go to every agent, events come
back from all of them into one queue, and an agent that dies or goes silent is *lost*: its
workers are no longer waited for, and ``summary.py`` reports its part apart.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from hub.bench.agents.codec import CodecError, decode, encode
from hub.bench.agents.frames import Channel, ChannelClosed
from hub.bench.agents.handshake import HandshakeError, controller_side
from hub.bench.agents.server import BEAT_S, SILENCE_S
from hub.bench.agents.summary import AgentRecord, LostPart, add_agents, phase_of
from hub.bench.config import RunConfig
from hub.bench.messages import Command, Connected, Event, Failed, Progress, Start
from hub.bench.pool import BenchError, WorkerTarget
from hub.bench.report import Run
from hub.bench.schema import Report
from hub.bench.sizing import FD_MARGIN, SizingError, default_procs, sockets_per_proc

__all__ = ["AgentLink", "AgentPool", "connect_agents", "parse_agents", "plan"]

#: How long the controller waits for an agent to stop its workers and close.
STOP_TIMEOUT_S = 20.0


class AgentLink:
    """One authenticated agent connection, and what the controller saw of it."""

    def __init__(self, channel: Channel, record: AgentRecord, cpus: int, fd_limit: int) -> None:
        self.channel = channel
        self.record = record
        self.cpus = cpus
        self.fd_limit = fd_limit
        self.reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.record.name


def parse_agents(text: str) -> list[tuple[str, int]]:
    """``h1:p,h2:p`` (``[::1]:p`` for IPv6) as (host, port) pairs."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SizingError(f"--agents {item!r}: expected HOST:PORT")
        out.append((host.strip("[]"), int(port)))
    if len({f"{h}:{p}" for h, p in out}) != len(out):
        raise SizingError(f"--agents {text!r} names an agent twice")
    return out


def connect_agents(addresses: Sequence[tuple[str, int]], token: str) -> list[AgentLink]:
    """Connect to and authenticate every agent; HandshakeError (all closed) when one fails."""
    links: list[AgentLink] = []
    try:
        for host, port in addresses:
            name = f"{host}:{port}"
            try:
                sock = socket.create_connection((host, port), timeout=10.0)
            except OSError as exc:
                raise HandshakeError(f"cannot reach agent {name}: {exc}") from None
            channel = Channel(sock, name)
            info = controller_side(channel, token)
            record = AgentRecord(
                name=name, host=info.host, offset_ns=info.offset_ns, rtt_ns=info.rtt_ns
            )
            links.append(AgentLink(channel, record, info.cpus, info.fd_limit))
    except BaseException:
        for link in links:
            link.channel.close()
        raise
    return links


def plan(config: RunConfig, links: list[AgentLink], procs: int | None) -> RunConfig:
    """Give each agent its workers (``procs`` each, or as many as its CPUs and its open-file
    limit want); the run's config, with ``procs`` the workers of all agents."""
    total = config.num_sockets + config.num_publishers
    share = -(-total // len(links))
    counts = [procs or default_procs(share, link.cpus, link.fd_limit) for link in links]
    whole = sum(counts)
    per_worker = sockets_per_proc(total, whole)
    first = 0
    for link, count in zip(links, counts, strict=True):
        if per_worker + FD_MARGIN > link.fd_limit:
            raise SizingError(
                f"agent {link.name}: {per_worker} sockets per worker pass its open-file limit "
                f"of {link.fd_limit}; add agents, or --procs"
            )
        link.record.workers = list(range(first, first + count))
        first += count
    return replace(config, procs=whole)


class AgentPool:
    """The coordinator's workers, on agents."""

    def __init__(self, config: RunConfig, links: list[AgentLink], target: WorkerTarget) -> None:
        self.config = config
        self.links = links
        self.target = f"{target.__module__}:{getattr(target, '__qualname__', '')}"
        self.events: queue.Queue[Event] = queue.Queue()
        self.errors: list[str] = []
        self.last_command = ""
        self.started_at: float | None = None  # when Start went out (monotonic)
        self.closing = False
        self._beating = threading.Event()

    @property
    def records(self) -> list[AgentRecord]:
        return [link.record for link in self.links]

    def start(self) -> None:
        encoded = encode(self.config)
        for link in self.links:
            frame = {
                "type": "run",
                "target": self.target,
                "config": encoded,
                "workers": link.record.workers,
                "offset_ns": link.record.offset_ns,
            }
            self._send(link, frame)
            link.reader = threading.Thread(
                target=self._read, args=(link,), name=f"agent-{link.name}", daemon=True
            )
            link.reader.start()
        threading.Thread(target=self._beat, name="agent-beats", daemon=True).start()

    def live(self) -> set[int]:
        return {n for link in self.links if link.record.lost is None for n in link.record.workers}

    def send_all(self, command: Command) -> None:
        self.last_command = type(command).__name__
        if isinstance(command, Start):
            self.started_at = time.monotonic()
        frame = {"type": "command", "command": encode(command)}
        for link in self.links:
            if link.record.lost is None:
                self._send(link, frame)

    def get(self, timeout_s: float) -> Event:
        self.check_alive()  # an agent's refusal says more than its loss
        if not self.live():
            reasons = "; ".join(f"{r.name}: {r.lost.reason}" for r in self.records if r.lost)
            raise BenchError(f"every agent was lost ({reasons})")
        return self.events.get(timeout=timeout_s)

    def check_alive(self) -> None:
        if self.errors:
            raise BenchError(self.errors[0])

    def annotate(self, report: Report, run: Run) -> None:
        add_agents(self.config, run, self.records, report)

    def shutdown(self) -> None:
        self.closing = True
        self._beating.set()
        for link in self.links:
            if link.record.lost is None:
                try:
                    link.channel.send({"type": "stop"})
                except ChannelClosed:
                    pass
        # Each agent closes once its workers have stopped: wait, so none outlives the run.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for link in self.links:
            if link.reader is not None:
                link.reader.join(max(0.1, deadline - time.monotonic()))
            link.channel.close()

    # The connections

    def _send(self, link: AgentLink, frame: dict[str, object]) -> None:
        try:
            link.channel.send(frame)
        except ChannelClosed as exc:
            self._lose(link, str(exc))

    def _lose(self, link: AgentLink, reason: str) -> None:
        if link.record.lost is not None or self.closing:
            return
        after = None if self.started_at is None else time.monotonic() - self.started_at
        link.record.lost = LostPart(
            reason=reason,
            phase=phase_of(self.last_command),
            after_s=None if after is None else round(after, 3),
        )

    def _read(self, link: AgentLink) -> None:
        """An agent's frames, until it closes: its events go to the coordinator's queue."""
        record = link.record
        while True:
            try:
                frame = link.channel.recv(SILENCE_S)
                if frame["type"] == "event":
                    event = decode(frame["event"])
                    if not isinstance(event, Event) or event.worker not in record.workers:
                        raise CodecError(f"not an event of its workers: {str(event)[:80]}")
                    self.events.put(self._note(record, event))
                elif frame["type"] == "error":
                    self.errors.append(f"agent {link.name}: {frame.get('error')}")
            except (ChannelClosed, CodecError, KeyError) as exc:
                self._lose(link, str(exc) if not isinstance(exc, KeyError) else f"bad frame {exc}")
                return

    def _note(self, record: AgentRecord, event: Event) -> Event:
        if isinstance(event, Connected):
            record.connected[event.worker] = event
        elif isinstance(event, Progress):
            record.progress[event.worker] = event.snapshot
            if self.started_at is not None:
                record.progress_s = round(time.monotonic() - self.started_at, 3)
        elif isinstance(event, Failed):
            return replace(event, message=f"{event.message} (on agent {record.name})")
        return event

    def _beat(self) -> None:
        while not self._beating.wait(BEAT_S):
            for link in self.links:
                if link.record.lost is None:
                    self._send(link, {"type": "beat"})
