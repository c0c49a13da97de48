"""A connection's expiry (``hub.ws.expiry``): 4001 at a token's exp, a refresh hook that
extends a hook-connected connection, and a refresh op that moves it."""

from __future__ import annotations

import asyncio
import time

from hub.core.auth import Grant
from hub.core.errors import CloseCode
from hub.core.hooks import HookRefused
from hub.ws import expiry as expiry_module
from hub.ws.expiry import Expiry


class Client:
    def __init__(self) -> None:
        self.closed: list[int] = []

    def disconnect(self, code: int, reason: str) -> None:
        self.closed.append(code)


async def test_a_token_closes_its_connection_at_exp() -> None:
    """At the token's exp the connection is closed with 4001, not before."""
    client = Client()
    expiry = Expiry(client, None)
    expiry.set(time.time() + 0.1)
    await asyncio.sleep(0.02)
    assert client.closed == []
    await asyncio.sleep(0.2)
    assert client.closed == [CloseCode.TOKEN_EXPIRED]


async def test_the_refresh_hook_extends_and_a_refusal_closes_at_exp(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A hook-connected connection asks before its exp; a later expiry moves the timer, a
    refused refresh leaves the 4001 at the old exp."""
    monkeypatch.setattr(expiry_module, "REFRESH_AHEAD_S", 0.05)
    asked: list[float] = []

    async def extend(exp: float) -> float:
        asked.append(exp)
        if len(asked) > 1:
            raise HookRefused("refresh", "no", "not any more")
        return exp + 0.2

    client = Client()
    expiry = Expiry(client, extend)
    expiry.set(time.time() + 0.1)
    await asyncio.sleep(0.15)
    assert len(asked) == 1 and client.closed == []  # extended past the first exp
    await asyncio.sleep(0.35)
    assert len(asked) == 2 and client.closed == [CloseCode.TOKEN_EXPIRED]
    expiry.cancel()


async def test_a_refresh_op_moves_the_expiry_and_stops_the_hook() -> None:
    """``set_from`` takes a new JWT's exp and no longer asks the hook."""
    client = Client()

    async def never(exp: float) -> float:
        raise AssertionError("the hook is not asked after a refresh op")

    expiry = Expiry(client, never)
    expiry.set(time.time() + 10)
    expiry.set_from(Grant(sub="a", exp=time.time() + 0.05, subscribe=["*"], publish=["*"]))
    await asyncio.sleep(0.15)
    assert client.closed == [CloseCode.TOKEN_EXPIRED]
