"""``--protocol raw`` (the default): every frame is a message; the URL is the channel."""

from __future__ import annotations

from hub.bench.protocols.base import Adapter

__all__ = ["Raw"]


class Raw(Adapter):
    name = "raw"
