"""``echo``: each client is alone on its own channel and sends its next message when the
previous one comes back, so every round trip is timed; with ``--rate``, each client sends on
its own schedule instead (rate / N per second), without waiting for its previous message."""

from __future__ import annotations

import asyncio
import time

from hub.bench import header as hdr
from hub.bench.messages import Start
from hub.bench.scenarios.base import Scenario
from hub.bench.scenarios.context import Outcome, WorkerSide
from hub.bench.sockets import Receiver

__all__ = ["Echo"]


class Echo(Scenario):
    name = "echo"

    def channel_of(self, index: int) -> str:
        return f"{self.config.channel}-echo-{index}"

    async def play(self, worker: WorkerSide) -> None:
        config = self.config
        start = await worker.expect(Start)
        stop_phase = worker.measure_phase()
        deadline = start.t0_ns / 1e9 + config.duration_s
        limit = config.messages if config.messages is not None else 1 << 62
        if config.rate is not None:
            await worker.drain(await self._paced(worker, deadline, limit, config.rate))
            stop_phase()
            return
        bodies = self.bodies()
        num_bodies = len(bodies)
        pack = hdr.HEADER.pack
        sent: dict[int, int] = {}
        counters = worker.counters
        run_id = config.run_id
        done = asyncio.Event()
        active = [0]

        def send_next(receiver: Receiver, client_id: int) -> None:
            seq = sent.get(client_id, 0)
            if seq >= limit or time.monotonic() >= deadline or receiver.transport is None:
                active[0] -= 1
                if active[0] <= 0:
                    done.set()
                return
            sent[client_id] = seq + 1
            counters.sent += 1
            receiver.send_bench(
                pack(hdr.MAGIC, hdr.KIND_ECHO, 0, run_id, 0, seq, time.monotonic_ns())
                + bodies[seq % num_bodies]
            )

        def on_echo(receiver: Receiver, client_id: int, seq: int) -> None:
            if seq + 1 == sent.get(client_id):  # its latest: send the next one
                send_next(receiver, client_id)

        for client_id, receiver in enumerate(worker.receivers):
            # Each echo client is the one publisher (id 0) of its own channel.
            receiver.on_bench = lambda _pub, seq, r=receiver, cid=client_id: on_echo(r, cid, seq)
            if receiver.transport is not None:
                active[0] += 1
        for client_id, receiver in enumerate(worker.receivers):
            if receiver.transport is not None:
                send_next(receiver, client_id)
        if active[0] <= 0:
            done.set()
        try:
            await asyncio.wait_for(done.wait(), config.duration_s + config.drain_timeout_s + 1)
        except TimeoutError:
            pass
        await worker.drain(sum(sent.values()))
        stop_phase()

    def expected(self, outcome: Outcome, sent: int, receivers: int) -> int:
        return sent

    async def _paced(self, worker: WorkerSide, deadline: float, limit: int, rate: float) -> int:
        """--rate: every connected client of this worker sends rate / N messages per second, the
        clients in turn (so their sends are spread evenly), each message timed from when it
        was due, as fanout's are. Returns how many were sent."""
        config = self.config
        clients = [r for r in worker.receivers if r.transport is not None]
        if not clients:
            return 0
        worker_rate = rate / config.num_sockets * len(clients)
        period_ns = 1e9 / worker_rate
        total = limit * len(clients)
        bodies = self.bodies()
        num_bodies = len(bodies)
        pack = hdr.HEADER.pack
        magic, kind, run_id = hdr.MAGIC, hdr.KIND_ECHO, config.run_id
        counters = worker.counters
        started_ns = time.monotonic_ns()
        started = started_ns / 1e9
        done = 0  # this worker's messages so far: message n is client n % k's number n // k
        sent = 0
        while done < total:
            now = time.monotonic()
            if now >= deadline:
                break
            due = min(int((now - started) * worker_rate) + 1, total) - done
            for _ in range(max(0, min(due, 1024))):
                receiver = clients[done % len(clients)]
                seq = done // len(clients)
                sent_ns = int(started_ns + done * period_ns)
                done += 1
                if receiver.transport is None:  # closed: it sends no more
                    continue
                receiver.send_bench(
                    pack(magic, kind, 0, run_id, 0, seq, sent_ns) + bodies[seq % num_bodies]
                )
                sent += 1
                counters.sent += 1
            next_due = started + done / worker_rate
            await asyncio.sleep(max(0.0, min(next_due, deadline) - time.monotonic()))
        return sent
