"""The start of every controller-agent connection: the versions, the token, the clock.

The token is never sent: each side proves it knows it with an HMAC-SHA256 of a nonce the
other side chose, so a wrong token is refused before any work is described, and a listener
that does not know the token cannot pose as an agent. The clock step measures the agent's
monotonic clock against the controller's (see ``clock.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub import __version__
from hub.bench.agents.frames import Channel, ChannelClosed
from hub.bench.sizing import fd_hard_limit

__all__ = [
    "PROTOCOL",
    "AgentInfo",
    "HandshakeError",
    "agent_side",
    "controller_side",
    "proof",
]

#: The agent protocol's name and version: both ends must speak the same one.
PROTOCOL = "hub-bench-agent/1"
#: How long either end waits for the other's next handshake frame.
HANDSHAKE_TIMEOUT_S = 10.0
#: Clock probes per agent; the one with the shortest round trip is kept.
CLOCK_PROBES = 8


class HandshakeError(RuntimeError):
    """The connection was refused; the message says why and what to fix."""


@dataclass(frozen=True)
class AgentInfo:
    """What an agent tells the controller of itself."""

    host: str
    cpus: int
    fd_limit: int
    #: The agent's monotonic clock minus the controller's, in ns, and the round trip it was
    #: measured over (the offset is good to half of it).
    offset_ns: int = 0
    rtt_ns: int = 0


def proof(token: str, role: str, nonce: str) -> str:
    """HMAC-SHA256 of ``role|nonce`` under ``token``, hex."""
    message = f"{PROTOCOL}|{role}|{nonce}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def agent_side(
    channel: Channel, token: str, claim: Callable[[], bool] = lambda: True
) -> dict[str, Any]:
    """The agent's half; returns the first frame after it (the run). ``claim`` is asked, once
    the controller has proved the token, whether the agent is free for it. Raises
    HandshakeError after telling the controller why it is refused."""
    nonce = secrets.token_hex(16)
    channel.send({"type": "hello", "protocol": PROTOCOL, "version": __version__, "nonce": nonce})
    auth = channel.recv(HANDSHAKE_TIMEOUT_S)
    if auth.get("type") != "auth":
        raise HandshakeError(f"expected auth, got {auth.get('type')!r}")
    if auth.get("protocol") != PROTOCOL or auth.get("version") != __version__:
        reason = (
            f"the agent runs hub {__version__} ({PROTOCOL}), the controller hub "
            f"{auth.get('version')} ({auth.get('protocol')}): run the same version on both"
        )
        channel.send({"type": "refused", "error": reason})
        raise HandshakeError(reason)
    if not hmac.compare_digest(str(auth.get("proof", "")), proof(token, "controller", nonce)):
        channel.send(
            {"type": "refused", "error": "wrong token: --agent-token must be the agent's --token"}
        )
        raise HandshakeError("wrong token")
    # Only after the proof: a connection that cannot prove the token holds nothing.
    if not claim():
        channel.send({"type": "refused", "error": "busy with another controller's run"})
        raise HandshakeError("busy with another run")
    channel.send(
        {
            "type": "welcome",
            "proof": proof(token, "agent", str(auth.get("nonce", ""))),
            "host": socket.gethostname(),
            "cpus": os.cpu_count() or 1,
            "fd_limit": fd_hard_limit(),
        }
    )
    # The clock probes, until the run is described.
    while True:
        frame = channel.recv(HANDSHAKE_TIMEOUT_S)
        if frame.get("type") != "clock":
            return frame
        channel.send({"type": "clock", "agent_ns": time.monotonic_ns()})


def controller_side(channel: Channel, token: str) -> AgentInfo:
    """The controller's half: authenticate both ways, then measure the agent's clock."""
    hello = _expect(channel, "hello")
    if hello.get("protocol") != PROTOCOL or hello.get("version") != __version__:
        raise HandshakeError(
            f"agent {channel.name} runs hub {hello.get('version')} ({hello.get('protocol')}), "
            f"this controller hub {__version__} ({PROTOCOL}): run the same version on both"
        )
    nonce = secrets.token_hex(16)
    channel.send(
        {
            "type": "auth",
            "protocol": PROTOCOL,
            "version": __version__,
            "proof": proof(token, "controller", str(hello.get("nonce", ""))),
            "nonce": nonce,
        }
    )
    welcome = _expect(channel, "welcome")
    if not hmac.compare_digest(str(welcome.get("proof", "")), proof(token, "agent", nonce)):
        raise HandshakeError(f"agent {channel.name} did not prove it knows the token")
    best: tuple[int, int] | None = None  # (rtt, offset)
    for _ in range(CLOCK_PROBES):
        sent = time.monotonic_ns()
        channel.send({"type": "clock"})
        agent_ns = int(_expect(channel, "clock")["agent_ns"])
        back = time.monotonic_ns()
        sample = (back - sent, agent_ns - (sent + back) // 2)
        best = sample if best is None or sample < best else best
    assert best is not None
    return AgentInfo(
        host=str(welcome.get("host", "")),
        cpus=int(welcome.get("cpus", 1)),
        fd_limit=int(welcome.get("fd_limit", 1024)),
        offset_ns=best[1],
        rtt_ns=best[0],
    )


def _expect(channel: Channel, kind: str) -> dict[str, Any]:
    try:
        frame = channel.recv(HANDSHAKE_TIMEOUT_S)
    except ChannelClosed as exc:
        raise HandshakeError(f"agent {channel.name}: {exc}") from None
    if frame.get("type") == "refused":
        raise HandshakeError(f"agent {channel.name} refused the controller: {frame.get('error')}")
    if frame.get("type") != kind:
        raise HandshakeError(f"agent {channel.name}: expected {kind}, got {frame.get('type')!r}")
    return frame
