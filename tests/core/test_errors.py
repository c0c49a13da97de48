"""The error tree, the close-code table and URL redaction (pure)."""

from __future__ import annotations

import pytest

from hub.core.errors import (
    CLOSE_CODES,
    BrokerUnavailable,
    CloseCode,
    ConfigError,
    HubError,
    InvalidChannel,
    ProtocolError,
    close_codes_table,
    redact_url,
)


def test_every_error_is_a_hub_error_and_says_what_is_wrong() -> None:
    """Each error's text names its key, channel or code with the reason."""
    assert str(ConfigError("HUB_PORT", 0, "too low")) == "HUB_PORT=0: too low"
    assert str(ProtocolError("bad_json", "not JSON", 7)) == "bad_json: not JSON"
    assert ProtocolError("c", "m", 7).request_id == 7
    invalid = str(InvalidChannel("x" * 200, "too long"))
    assert invalid.endswith(": too long") and "x" * 81 not in invalid
    for error in (ConfigError, InvalidChannel, ProtocolError, BrokerUnavailable):
        assert issubclass(error, HubError)


def test_broker_unavailable_is_a_connection_error() -> None:
    """Code that retries on ConnectionError retries on an unreachable broker too."""
    with pytest.raises(ConnectionError):
        raise BrokerUnavailable("redis down")


def test_every_close_code_has_a_rule_and_a_table_row() -> None:
    """CLOSE_CODES covers the enum, and the generated table has one row per code, in order."""
    assert set(CLOSE_CODES) == set(CloseCode)
    rows = close_codes_table().splitlines()[2:]
    assert [int(row.split(" | ")[0].strip("| ")) for row in rows] == [int(c) for c in CLOSE_CODES]
    assert not CLOSE_CODES[CloseCode.NORMAL].should_reconnect
    assert CLOSE_CODES[CloseCode.SLOW_CONSUMER].should_reconnect


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (None, "memory"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:hunter2@r:6379", "redis://:***@r:6379"),
        ("rediss://user:s3cret@r:6380/1", "rediss://user:***@r:6380/1"),
    ],
)
def test_redact_url_hides_only_the_password(url: str | None, shown: str) -> None:
    """The password becomes ***; the rest of the URL stays as it was."""
    assert redact_url(url) == shown
