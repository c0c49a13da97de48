"""``fanout``: publishers send numbered messages to one channel (or several); every receiver
counts what it gets, per publisher, and times it."""

from __future__ import annotations

import asyncio
import time

from hub.bench import header as hdr
from hub.bench.adapted import make_publisher
from hub.bench.config import RunConfig
from hub.bench.messages import Drain, Sent, Start
from hub.bench.scenarios.base import REPLY_GRACE_S, Scenario
from hub.bench.scenarios.context import CoordinatorSide, Outcome, WorkerSide
from hub.bench.sizing import place, worker_indices
from hub.bench.sockets import Publisher
from hub.bench.target import channel_url

__all__ = ["Fanout"]


class Fanout(Scenario):
    name = "fanout"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        #: Worker side: messages sent per publisher id.
        self.sent_by_pub: dict[int, int] = {}
        #: Worker side: messages sent in each rate phase, over this worker's publishers.
        self.sent_by_phase: list[int] = []
        self._publishers: list[Publisher] = []

    def num_streams(self) -> int:
        return max(1, self.config.num_publishers)

    def publishers(self, worker: WorkerSide) -> list[tuple[int, str, Publisher]]:
        config = self.config
        out: list[tuple[int, str, Publisher]] = []
        for pub_id in worker_indices(config.num_publishers, worker.index, config.procs):
            publisher = make_publisher(worker.adapter, config.channel, worker.counters, pub_id)
            self._publishers.append(publisher)
            # Publishers get indices after the subscribers': another spread of sources.
            index = config.num_sockets + pub_id
            url = channel_url(
                place(index, config.urls, config.source_addrs).url, config.channel, index
            )
            out.append((index, url, publisher))
        return out

    async def play(self, worker: WorkerSide) -> None:
        config = self.config
        start = await worker.expect(Start)
        stop_phase = worker.measure_phase()
        counts = [
            _share(config.messages, config.num_publishers, p.pub_id)
            if config.messages is not None
            else None
            for p in self._publishers
        ]
        t0 = start.t0_ns / 1e9
        deadline = t0 + config.duration_s
        await asyncio.gather(
            *(
                self._publish(worker, pub, count, self._segments(t0, deadline))
                for pub, count in zip(self._publishers, counts, strict=True)
            )
        )
        worker.emit(
            Sent(
                worker=worker.index,
                sent_by_pub={p.pub_id: self.sent_by_pub.get(p.pub_id, 0) for p in self._publishers},
                sent_by_phase=self.sent_by_phase,
            )
        )
        drain = await worker.expect(Drain)
        await worker.drain(worker.num_receivers_connected() * drain.total_sent)
        stop_phase()

    def _segments(self, t0: float, deadline: float) -> list[tuple[float | None, float]]:
        """(each publisher's rate, or None for max; when it ends) of each rate phase."""
        config = self.config
        if not config.rate_phases:
            rate = config.rate / config.num_publishers if config.rate else None
            return [(rate, deadline)]
        segments: list[tuple[float | None, float]] = []
        end = t0
        for rate, seconds in config.rate_phases:
            end += seconds
            segments.append((rate / config.num_publishers, end))
        return segments

    async def _publish(
        self,
        worker: WorkerSide,
        pub: Publisher,
        count: int | None,
        segments: list[tuple[float | None, float]],
    ) -> None:
        """Send ``count`` messages (or until the last segment ends), each segment at its rate,
        or windowed at max rate."""
        config = self.config
        limit = count if count is not None else 1 << 62
        bodies = self.bodies()
        num_bodies = len(bodies)
        pack = hdr.HEADER.pack
        magic, kind, pub_id, run_id = hdr.MAGIC, hdr.KIND_FANOUT, pub.pub_id, config.run_id
        counters = worker.counters
        pub.wakeup = asyncio.Event()
        seq = 0
        if len(self.sent_by_phase) < len(segments):
            self.sent_by_phase = [0] * len(segments)
        for phase, (rate, deadline) in enumerate(segments):
            first = seq  # the schedule of a segment counts from its first message
            started_ns = time.monotonic_ns()
            started = started_ns / 1e9  # the same clock: due times are never after the send
            period_ns = 0 if rate is None else 1e9 / rate
            while seq < limit and pub.transport is not None:
                now = time.monotonic()
                if now >= deadline:
                    break
                if rate is None:
                    allowed = pub.echoed + config.window - seq
                else:
                    allowed = int((now - started) * rate) + 1 - (seq - first)
                allowed = min(allowed, limit - seq, 1024)
                send = pub.send_bench
                for _ in range(max(0, allowed)):
                    # At a set rate, a message is timed from when it was due, not from when a
                    # late loop got to it: a stall of the publisher counts in the latency
                    # instead of being hidden by a burst (coordinated omission). --rate max has
                    # no schedule.
                    sent_ns = (
                        int(started_ns + (seq - first) * period_ns)
                        if period_ns
                        else time.monotonic_ns()
                    )
                    send(
                        pack(magic, kind, 0, run_id, pub_id, seq, sent_ns)
                        + bodies[seq % num_bodies]
                    )
                    seq += 1
                counters.sent += max(0, allowed)
                if rate is None:
                    pub.wakeup.clear()
                    if pub.echoed + config.window - seq <= 0:
                        try:
                            await asyncio.wait_for(pub.wakeup.wait(), max(0.001, deadline - now))
                        except TimeoutError:
                            pass
                    else:
                        await asyncio.sleep(0)
                else:
                    next_due = started + ((seq - first) / rate)
                    await asyncio.sleep(max(0.0, min(next_due, deadline) - time.monotonic()))
            self.sent_by_phase[phase] += seq - first
            if seq >= limit or pub.transport is None:
                break
            # The next phase starts when this one was due to end, not when its loop woke up.
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        self.sent_by_pub[pub.pub_id] = seq

    def coordinate(self, coordinator: CoordinatorSide, t0_ns: int) -> Outcome:
        coordinator.send_all(Start(t0_ns))
        sent = coordinator.gather(Sent, self.config.duration_s + REPLY_GRACE_S)
        sent_by_pub: dict[int, int] = {}
        for event in sent.values():
            sent_by_pub.update(event.sent_by_pub)
        send_s = coordinator.seconds_since_start()
        coordinator.set_phase("draining")
        coordinator.send_all(Drain(total_sent=sum(sent_by_pub.values())))
        sent_by_phase: list[int] = []
        if self.config.rate_phases:
            sent_by_phase = [
                sum(by_phase)
                for by_phase in zip(
                    *(e.sent_by_phase for e in sent.values() if e.sent_by_phase), strict=True
                )
            ]
        return Outcome(sent_by_pub=sent_by_pub, send_s=send_s, sent_by_phase=sent_by_phase)

    def expected(self, outcome: Outcome, sent: int, receivers: int) -> int:
        return sum((outcome.sent_by_pub or {}).values()) * receivers


def _share(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split as evenly as possible into ``parts``."""
    return total // parts + (1 if index < total % parts else 0)
