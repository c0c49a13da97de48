"""hub/core/replies.py: the frames hub.v1 answers with, and those the server sends unasked."""

from __future__ import annotations

import json

from hub.core.replies import subscribed_frame, unsubscribed_frame
from hub.core.sequence import Position


def test_server_side_subscription_frames() -> None:
    """What a connection is told when the server subscribes or unsubscribes it."""
    assert json.loads(subscribed_frame(["news"], {})) == {
        "type": "subscribed",
        "channels": ["news"],
        "server": True,
    }
    frame = json.loads(subscribed_frame(["a", "h"], {"h": (Position("E", 4), None)}))
    assert frame["positions"] == {"h": {"epoch": "E", "offset": 4}}
    assert json.loads(unsubscribed_frame("n#al")) == {
        "type": "unsubscribed",
        "channel": "n#al",
        "server": True,
    }
