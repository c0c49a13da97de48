"""hub/http/inputs.py: the HTTP handlers' shared channel check and error answer."""

from __future__ import annotations

import json

import pytest

from hub.core.errors import ProtocolError
from hub.core.protocol import BAD_CHANNEL
from hub.http.inputs import error_answer, valid_channel


def test_a_valid_channel_is_itself_and_a_bad_one_is_bad_channel() -> None:
    assert valid_channel("news") == "news"
    with pytest.raises(ProtocolError) as info:
        valid_channel("bad name")
    assert info.value.code == BAD_CHANNEL


def test_an_error_answer_carries_its_status_code_message_and_extras() -> None:
    response = error_answer(429, "publish_rejected", "full", published=2)
    assert response.status == 429
    assert response.text is not None
    assert json.loads(response.text) == {
        "error": {"code": "publish_rejected", "message": "full"},
        "published": 2,
    }
