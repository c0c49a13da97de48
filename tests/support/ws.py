"""WebSocket helpers for the tests."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection

from support.waits import t


async def recv_n(ws: ClientConnection, n: int, timeout: float = 10) -> list[str | bytes]:
    """Receive exactly ``n`` messages, failing after ``timeout`` (scaled) seconds."""
    out: list[str | bytes] = []

    async def run() -> None:
        while len(out) < n:
            out.append(await ws.recv())

    try:
        await asyncio.wait_for(run(), t(timeout))
    except TimeoutError:
        raise AssertionError(f"received {len(out)} of {n} messages: {out[-3:]!r}") from None
    return out


async def assert_silent(ws: ClientConnection, seconds: float = 0.3) -> None:
    """Nothing arrives on ``ws`` for a while (used after a delivery we did wait for)."""
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {msg!r}")
