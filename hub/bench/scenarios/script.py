"""``script``: virtual users that run a user's script (``hub bench script``; the engine is
``hub/bench/script/``). Each worker runs its share of the VUs from the start and sends its
exact counts and trends (:class:`ScriptDone`); the coordinator merges them into the report's
``script`` section, and the VUs' own connections into its ``connections``."""

from __future__ import annotations

import time

from hub.bench.messages import Finish, Notice, ScriptDone, Start
from hub.bench.scenarios.base import REPLY_GRACE_S, Scenario
from hub.bench.scenarios.context import CoordinatorSide, Outcome, WorkerSide
from hub.bench.script.run import Engine
from hub.bench.script.spec import RAMPING
from hub.bench.script.totals import merge, section

__all__ = ["Script"]


class Script(Scenario):
    name = "script"
    engine: Engine | None = None  # the worker's, once made

    def own_sockets(self) -> int:
        return 0 if self.engine is None else self.engine.open_sockets()

    async def play(self, worker: WorkerSide) -> None:
        spec = self.config.script
        assert spec is not None, "a script run without its script"

        def on_error(key: str, text: str) -> None:
            worker.emit(Notice(worker.index, key=key, text=text))

        engine = self.engine = Engine(
            self.config,
            spec,
            worker.index,
            worker.counters,
            worker.recorder.pending.append,
            on_error,
        )  # the script is loaded before the start, not on the run's time
        await worker.expect(Start)
        stop_phase = worker.measure_phase()
        # From when Start arrived, on this host's clock: the coordinator's monotonic clock
        # (Start.t0_ns) is this one only on the same host, and a VU needs no common clock.
        totals = await engine.run(time.monotonic())
        stop_phase()
        worker.emit(ScriptDone(worker.index, totals))
        # Only then the Result: one sent while the coordinator still gathers ScriptDone events
        # would be passed over.
        await worker.expect(Finish)

    def coordinate(self, coordinator: CoordinatorSide, t0_ns: int) -> Outcome:
        spec = self.config.script
        assert spec is not None
        executor = spec.executor
        coordinator.send_all(Start(t0_ns))
        seconds = sum(s for s, _ in executor.stages) if executor.kind == RAMPING else 0.0
        seconds = seconds or executor.duration_s
        done = coordinator.gather(ScriptDone, seconds + executor.graceful_stop_s + REPLY_GRACE_S)
        measured_s = coordinator.seconds_since_start()
        coordinator.send_all(Finish())
        totals = merge([done[n].totals for n in sorted(done)])
        report = {"file": spec.filename, "executor": executor.as_dict()}
        report |= section(totals, measured_s)
        connects = totals.connects
        return Outcome(
            script=report,
            overrides={
                "connections": {
                    # Of the connections the VUs tried, how many opened.
                    "target": connects.get("opened", 0) + connects.get("failed", 0),
                    "connected": connects.get("opened", 0),
                    "failed": connects.get("failed", 0),
                    "errors": totals.connect_errors,
                    "connect_rate_per_s": None,
                },
                "messages": {
                    "sent": totals.sent,
                    "received": totals.received,
                    "recv_per_s": round(totals.received / measured_s, 1) if measured_s else None,
                    "send_per_s": round(totals.sent / measured_s, 1) if measured_s else None,
                },
            },
        )
