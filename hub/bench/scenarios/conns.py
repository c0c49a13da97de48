"""``conns``: open the sockets, hold them, and measure what each one costs the server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.bench.memory import server_rss
from hub.bench.scenarios.base import Scenario

if TYPE_CHECKING:
    from hub.bench.coordinator import Coordinator
    from hub.bench.worker import Worker

__all__ = ["Conns"]


class Conns(Scenario):
    name = "conns"
    measures_server_memory = True

    async def play(self, worker: Worker) -> None:
        await worker.expect("start")
        stop_phase = worker.measure_phase()
        await worker.expect("finish")
        stop_phase()

    def coordinate(self, coordinator: Coordinator, t0_ns: int) -> dict[str, Any]:
        memory = coordinator.memory
        coordinator.send_all("start", t0_ns=t0_ns)
        coordinator.wait_progress(memory.settle_s)
        rss_after, _ = server_rss(memory.pids, memory.include_children, memory.metrics_url)
        coordinator.set_phase("holding")
        coordinator.wait_progress(max(0.0, memory.hold_s - memory.settle_s))
        coordinator.send_all("finish")
        rss_before, source = coordinator.server_rss_before
        num_connected = coordinator.num_connected
        return {
            "server_memory": {
                "source": source,
                "rss_before_bytes": rss_before,
                "rss_after_bytes": rss_after,
                "per_connection_bytes": (
                    round((rss_after - rss_before) / num_connected, 1)
                    if rss_before is not None and rss_after is not None and num_connected
                    else None
                ),
            }
        }
