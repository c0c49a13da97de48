"""``hub serve --log-format json``: one JSON object a line, lifecycle at INFO, nothing per
message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import HubProcess, t, wait_workers_ready
from websockets.asyncio.client import connect

NUM_MESSAGES = 50


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    # Two workers and the embedded redis-server: the supervisor's lines are JSON too.
    process = HubProcess("--workers", "2", "--log-format", "json", log_dir=tmp_path / "logs")
    yield process
    process.stop()


async def test_json_logs(hub: HubProcess) -> None:
    """Every line parses; start and stop are INFO; traffic adds no line."""
    hub.wait_serving(20)
    await wait_workers_ready(hub, 2)
    async with connect(hub.url("logs.room")) as a, connect(hub.url("logs.room")) as b:
        for i in range(NUM_MESSAGES):
            await a.send(f"payload-{i}")
        for client in (a, b):
            for _ in range(NUM_MESSAGES):
                await asyncio.wait_for(client.recv(), t(5))
    assert hub.stop() == 0

    lines = hub.output().splitlines()
    docs: list[dict[str, Any]] = [orjson.loads(line) for line in lines]
    for doc in docs:
        assert {"ts", "level", "logger", "msg", "pid"} <= doc.keys(), doc
        assert doc["ts"].endswith("Z")
        assert doc["level"] in ("debug", "info", "warning", "error", "critical")
        assert "payload-" not in doc["msg"]

    def info(text: str) -> list[dict[str, Any]]:
        return [d for d in docs if text in d["msg"] and d["level"] == "info"]

    assert info("starting 2 workers")
    assert {d["worker"] for d in info("serving ws://")} == {0, 1}
    assert {d["worker"] for d in info("shutting down")} == {0, 1}
    assert info("embedded redis-server")
    # Lifecycle only: a handful of lines, however many messages passed.
    assert len(docs) < 25, lines
    assert not [d for d in docs if d["level"] in ("warning", "error", "critical")], lines
