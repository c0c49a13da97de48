"""hub.core.hooks: the hooks' requests and answers, validated without I/O."""

from __future__ import annotations

import pytest

from hub.core.envelope import BINARY, JSON, TEXT
from hub.core.hooks import (
    HookRefused,
    HookUnavailable,
    connect_request,
    connect_status,
    message_body,
    parse_connect,
    parse_publish,
    parse_refresh,
    parse_rpc,
)


def test_a_connect_result_becomes_a_grant() -> None:
    result = parse_connect(
        {
            "result": {
                "user": "bob",
                "expire_at": 2e9,
                "channels": ["personal.bob", "personal.bob"],
                "subscribe": ["news.*"],
                "publish": "chat.*",
                "data": None,
            }
        }
    )
    assert result.channels == ("personal.bob",) and result.has_data and result.data is None
    grant = result.grant()
    assert grant.sub == "bob" and grant.exp == 2e9
    assert grant.can_subscribe("news.1") and not grant.can_subscribe("chat.1")
    assert grant.can_publish("chat.1") and not grant.can_publish("news.1")


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {},
        {"result": {}, "error": {}},
        {"result": []},
        {"error": "no"},
        {"error": {"code": ""}},
        {"error": {"code": "x", "message": 5}},
        {"result": {"expire_at": "soon"}},
        {"result": {"channels": ["bad channel!"]}},
        {"result": {"subscribe": [1]}},
    ],
)
def test_a_malformed_answer_is_a_failure_not_a_refusal(answer: object) -> None:
    with pytest.raises(HookUnavailable) as exc:
        parse_connect(answer)
    assert exc.value.cause == "bad_shape"


def test_a_refusal_carries_the_backends_code_and_maps_to_401_or_403() -> None:
    with pytest.raises(HookRefused) as exc:
        parse_connect({"error": {"code": "unauthorized", "message": "log in"}})
    assert (exc.value.code, exc.value.message) == ("unauthorized", "log in")
    assert connect_status(exc.value) == 401
    assert connect_status(HookRefused("connect", "banned", "")) == 403
    with pytest.raises(HookRefused) as numeric:
        parse_rpc({"error": {"code": 103, "message": "no"}})
    assert numeric.value.code == "103"


def test_publish_refresh_and_rpc_results() -> None:
    assert parse_publish({"result": {}}) is None
    replaced = parse_publish({"result": {"text": "hi"}})
    assert replaced is not None and (replaced.payload, replaced.kind) == (b"hi", TEXT)
    data = parse_publish({"result": {"data": {"a": 1}}})
    assert data is not None and (data.payload, data.kind) == (b'{"a":1}', JSON)
    with pytest.raises(HookUnavailable):
        parse_publish({"result": {"text": 1}})
    assert parse_refresh({"result": {"expire_at": 5}}) == 5.0
    with pytest.raises(HookUnavailable):
        parse_refresh({"result": {}})
    assert parse_rpc({"result": {"data": [1]}}) == [1]
    assert parse_rpc({"result": {}}) is None


def test_the_connect_request_forwards_only_the_named_headers() -> None:
    body = connect_request(
        transport="ws",
        target="/chat?a=1",
        headers=[("Cookie", "a=1"), ("cookie", "b=2"), ("X-Secret", "s")],
        forward=("Cookie",),
        subprotocol=None,
        remote_addr="127.0.0.1",
    )
    assert body == {
        "transport": "ws",
        "path": "/chat",
        "query": "a=1",
        "headers": {"cookie": "a=1, b=2"},
        "subprotocol": None,
        "remote_addr": "127.0.0.1",
    }


def test_a_message_goes_to_the_publish_hook_by_kind() -> None:
    assert message_body(b'{"a":1}', JSON) == {"data": {"a": 1}}
    assert message_body(b"hi", TEXT) == {"text": "hi"}
    assert message_body(b"\x00", BINARY) == {"binary": "AA=="}
