"""The bench's protocol adapters (``--protocol``): a new protocol is one small module and a
line here. See ``base.py`` for what an adapter answers."""

from __future__ import annotations

from hub.bench.protocols.base import Adapter, AdapterError, Framing, Seen
from hub.bench.protocols.hubv1 import HubV1
from hub.bench.protocols.raw import Raw
from hub.bench.protocols.socketio import SocketIO

__all__ = ["PROTOCOLS", "Adapter", "AdapterError", "Framing", "Seen", "adapter_for"]

PROTOCOLS: dict[str, type[Adapter]] = {cls.name: cls for cls in (Raw, HubV1, SocketIO)}


def adapter_for(name: str, event: str = "message", join_event: str | None = None) -> Adapter:
    """The adapter of ``--protocol name`` (with the Socket.IO event names)."""
    if name == SocketIO.name:
        return SocketIO(event, join_event)
    return PROTOCOLS[name]()
