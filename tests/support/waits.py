"""Scaled waits, free ports and process plumbing shared by every test module."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hub.core.config import METRICS_DIR_ENV

#: Every wait in the suite is a multiple of this; raise it on slow machines.
SCALE = float(os.environ.get("HUB_TEST_TIMEOUT_SCALE", "1"))
ROOT = Path(__file__).resolve().parent.parent.parent


def t(seconds: float) -> float:
    """A timeout, scaled by HUB_TEST_TIMEOUT_SCALE."""
    return seconds * SCALE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds, scaled."""
    deadline = time.monotonic() + t(timeout)
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {t(timeout):.1f}s waiting for {what}")


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without HUB_* settings and PROMETHEUS_MULTIPROC_DIR, plus
    ``overrides``: a child hub sees only what its test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != METRICS_DIR_ENV}
    env.update(overrides)
    return env


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM this one process, then SIGKILL it if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


async def async_wait_until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + t(timeout)
    while time.monotonic() < deadline:
        result = cond()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {t(timeout):.1f}s waiting for {what}")
