"""Socket URLs and handshake headers, from the command line's values. Pure."""

from __future__ import annotations

import pytest

from hub.bench.ramp import parse_ramp, start_offset_s
from hub.bench.target import Handshake, channel_url, parse_header


def test_a_bare_url_is_hubs_raw_layout() -> None:
    assert channel_url("ws://h:1", "a b", 3) == "ws://h:1/a%20b"
    assert channel_url("wss://h:1/", "room", 0) == "wss://h:1/room"


def test_a_path_or_query_is_kept_exactly() -> None:
    assert channel_url("ws://h:1/socket?x=1", "room", 2) == "ws://h:1/socket?x=1"
    assert channel_url("ws://h:1/?x=1", "room", 2) == "ws://h:1/?x=1"


def test_placeholders_are_replaced() -> None:
    assert channel_url("ws://h/c/{channel}?i={i}", "r/1", 7) == "ws://h/c/r%2F1?i=7"


def test_headers_token_subprotocol_origin() -> None:
    handshake = Handshake.build(["X-A: 1 2"], "t", "chat", "http://o", None, False)
    assert handshake.headers == (
        ("X-A", "1 2"),
        ("Authorization", "Bearer t"),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Origin", "http://o"),
    )
    assert handshake.header_lines().startswith(b"X-A: 1 2\r\nAuthorization: Bearer t\r\n")


@pytest.mark.parametrize("bad", ["NoColon", ": empty", "Bad Name: x", "X: a\r\nInjected: 1"])
def test_a_malformed_header_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="expected 'Name: value'"):
        parse_header(bad)


def test_ramp_phases() -> None:
    phases = parse_ramp("0:10/1s,10:30/4")
    assert phases == ((0, 10, 1.0), (10, 30, 4.0))
    assert [start_offset_s(phases, i) for i in (0, 5, 10, 20, 30)] == [0.0, 0.5, 1.0, 3.0, 5.0]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5:10/1s", "starts at 5"),
        ("0:10/1s,11:20/1s", "starts at 11"),
        ("0:0/1s", "above"),
        ("0-10/1s", "expected FROM:TO"),
    ],
)
def test_a_bad_ramp_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_ramp(text)
