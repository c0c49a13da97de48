"""``broadcast-all``: in each round, the first socket of each channel sends one message, and
the round ends when every socket has it: how long until everyone heard."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from hub.bench import header as hdr
from hub.bench.config import RunConfig
from hub.bench.messages import Finish, Round, RoundDone, Start
from hub.bench.scenarios.base import REPLY_GRACE_S, Scenario
from hub.bench.scenarios.context import CoordinatorSide, Outcome, WorkerSide
from hub.bench.schema import Section
from hub.bench.sizing import worker_indices
from hub.bench.sockets import Receiver
from hub.bench.stats import merge_encoded, summarize

__all__ = ["BroadcastAll"]


class BroadcastAll(Scenario):
    name = "broadcast-all"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        # Worker side, per round: arrivals and the last arrival time.
        self.round_counts: Counter[int] = Counter()
        self.round_last_ns: dict[int, int] = {}

    @property
    def has_interval_latency(self) -> bool:
        return False  # histograms are taken per round instead

    def prepare_receiver(self, worker: WorkerSide, receiver: Receiver) -> None:
        receiver.on_bench = self._on_arrival

    def _on_arrival(self, pub_id: int, seq: int) -> None:
        self.round_counts[seq] += 1
        now = time.monotonic_ns()
        if now > self.round_last_ns.get(seq, 0):
            self.round_last_ns[seq] = now

    async def play(self, worker: WorkerSide) -> None:
        config = self.config
        await worker.expect(Start)
        stop_phase = worker.measure_phase()
        # The first socket of each channel sends that channel's message.
        senders = [
            receiver
            for index, receiver in zip(
                worker_indices(config.num_sockets, worker.index, config.procs),
                worker.receivers,
                strict=True,
            )
            if index < max(1, config.num_channels)
        ]
        size = max(config.size, hdr.HEADER_SIZE)
        while True:
            command = await worker.expect(Round, Finish)
            if not isinstance(command, Round):
                break
            round_no = command.round
            first_send_ns = 0
            for receiver in senders:
                if receiver.transport is not None:
                    now = time.monotonic_ns()
                    first_send_ns = first_send_ns or now
                    receiver.send_bench(
                        hdr.encode(hdr.KIND_BROADCAST, 0, round_no, now, size, config.run_id)
                    )
                    worker.counters.sent += 1
            expected = worker.num_receivers_connected()
            deadline = time.monotonic() + config.round_timeout_s
            while (  # noqa: ASYNC110 - polled: the receive path sets no event per frame
                self.round_counts[round_no] < expected and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.002)
            hist = worker.recorder.flush()
            worker.emit(
                RoundDone(
                    worker=worker.index,
                    round=round_no,
                    received=self.round_counts[round_no],
                    expected=expected,
                    first_send_ns=first_send_ns,
                    last_arrival_ns=self.round_last_ns.get(round_no, 0),
                    hist=hist.encode() if hist.get_total_count() else b"",
                )
            )
        stop_phase()

    def coordinate(self, coordinator: CoordinatorSide, t0_ns: int) -> Outcome:
        coordinator.send_all(Start(t0_ns))
        rounds: list[Section] = []
        for round_no in range(self.config.rounds):
            coordinator.send_all(Round(round_no))
            got = coordinator.gather(RoundDone, self.config.round_timeout_s + REPLY_GRACE_S)
            hist = merge_encoded([g.hist for g in got.values()])
            first_send = min((g.first_send_ns for g in got.values() if g.first_send_ns), default=0)
            last_arrival = max((g.last_arrival_ns for g in got.values()), default=0)
            rounds.append(
                {
                    "round": round_no,
                    "received": sum(g.received for g in got.values()),
                    "expected": sum(g.expected for g in got.values()),
                    "latency_us": summarize(hist),
                    "all_received_us": (
                        (last_arrival - first_send) // 1000 if first_send and last_arrival else None
                    ),
                }
            )
        coordinator.send_all(Finish())
        return Outcome(rounds=rounds)

    def expected(self, outcome: Outcome, sent: int, receivers: int) -> int:
        return self.config.rounds * receivers
