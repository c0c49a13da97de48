"""How a connection to Redis notices that the network went silent, and how it leaves one.

On loopback a dead peer resets its sockets; on a network the common fault is a link that
drops everything, with no FIN and no RST, so a connection looks open while nothing crosses
it. Each Redis connection therefore has:

- a deadline on its connect and handshake (``CONNECT_TIMEOUT_S``): a dropped SYN is retried
  by the kernel at 1 s and 3 s, so 3 s allows one retransmit and then the broker's own backoff
  tries again (with Sentinel or Cluster, asking where the master is first);
- a reply deadline on every awaited command (``REPLY_TIMEOUT_S``), after which the
  connection is aborted, not merely the command;
- TCP keepalive (idle 5 s, then 3 probes 1 s apart): an idle connection to a host that
  vanished is dropped within ``KEEPALIVE_S``;
- ``TCP_USER_TIMEOUT``: what the hub wrote and the peer's kernel did not acknowledge for
  ``USER_TIMEOUT_S`` ends the connection, instead of 15 minutes of retransmits;
- ``SO_LINGER`` 0, so that closing it sends an RST and discards what the kernel still holds.
  A graceful close would leave the unsent commands in the kernel, retransmitted once the
  link heals, after the broker has sent them again on its new connection: delivered twice.

The broker's probe (``redis/__init__.py``) sees a silent publish or pub/sub connection first,
within the probe timeout (3 s by default); these bound every other connection too.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT_S",
    "KEEPALIVE_S",
    "REPLY_TIMEOUT_S",
    "USER_TIMEOUT_S",
    "harden",
]

CONNECT_TIMEOUT_S = 3.0
REPLY_TIMEOUT_S = 5.0
_KEEPIDLE_S, _KEEPINTVL_S, _KEEPCNT = 5, 1, 3
#: An idle connection to a vanished host is dropped within this long.
KEEPALIVE_S = _KEEPIDLE_S + _KEEPINTVL_S * _KEEPCNT
USER_TIMEOUT_S = 10.0
#: l_onoff 1, l_linger 0: close(2) sends an RST and discards the send queue.
_LINGER_RST = struct.pack("ii", 1, 0)


def harden(sock: Any) -> None:
    """Set the options above on a TCP socket (a socket.socket, or uvloop's pseudo-socket)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    for name, value in (
        ("TCP_KEEPIDLE", _KEEPIDLE_S),
        ("TCP_KEEPINTVL", _KEEPINTVL_S),
        ("TCP_KEEPCNT", _KEEPCNT),
        ("TCP_USER_TIMEOUT", int(USER_TIMEOUT_S * 1000)),
    ):
        option = getattr(socket, name, None)
        if option is not None:  # Linux has them all; macOS lacks TCP_USER_TIMEOUT
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
