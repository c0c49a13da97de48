"""The node's tests share one fixture: a started node on the recording memory broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.node import DELAY_S, RecordingBroker

from hub.node import Node


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(broker=RecordingBroker(), max_buffered_bytes=1 << 20, unsubscribe_delay_s=DELAY_S)
    await node.start()
    yield node
    await node.close()
