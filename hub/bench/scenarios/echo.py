"""``echo``: each client is alone on its own channel and sends its next message when the
previous one comes back, so every round trip is timed."""

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
