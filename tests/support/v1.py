"""Small helpers for the hub.v1 tests: ``hub serve`` instances as they configure them, and
JSON over HTTP. The processes are support.py's; waits scale with HUB_TEST_TIMEOUT_SCALE."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.processes import HubProcess
from support.waits import t

#: The unit of every wait in these tests, in seconds (already scaled).
UNIT = t(5)


@contextlib.contextmanager
def v1_hub(tmp: Path, redis_url: str, *extra: str, api: bool = False) -> Iterator[HubProcess]:
    """A ready ``hub serve --workers 1`` on ``redis_url`` (plus ``extra``), stopped on exit;
    with ``api`` it serves the HTTP API on a second free port."""
    args = ("--redis", redis_url, "--workers", "1", "--unsubscribe-delay-s", "0.2", *extra)
    with HubProcess(*args, api=api, log_dir=tmp) as hub:
        yield hub.wait_ready()


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one HTTP request; errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=UNIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw
