"""The synchronous fan-out (pure, with fake subscribers)."""

from __future__ import annotations

from hub.core.delivery import deliver
from hub.core.envelope import Envelope
from hub.core.formats import PER_CONNECTION, RAW, V1


class FakeSubscriber:
    def __init__(self, fmt: int = 0, buffered: int = 0, closed: bool = False) -> None:
        self.format = fmt
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.closed = closed

    def send_batch(self, data: bytes) -> int:
        if self.closed:
            return -1
        self.writes.append(data)
        return self.buffered + len(data)

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        return self.send_batch(f"own:{channel}:".encode() + b"|".join(m.payload for m in messages))


def test_one_write_per_subscriber_and_one_encoding_per_format() -> None:
    """Each subscriber gets the whole batch in one write; each format is encoded once."""
    calls: list[int] = []

    def enc(i: int):  # type: ignore[no-untyped-def]
        def encode(channel: str, messages: list[Envelope]) -> bytes:
            calls.append(i)
            return f"{i}:{channel}:".encode() + b"|".join(m.payload for m in messages)

        return encode

    subs = [FakeSubscriber(0), FakeSubscriber(1), FakeSubscriber(0), FakeSubscriber(0)]
    msgs = [Envelope(b"a"), Envelope(b"b")]
    slow: list[FakeSubscriber] = []
    n = deliver(subs, "ch", msgs, 1000, slow, (enc(0), enc(1), enc(2)))  # type: ignore[arg-type]
    assert n == 8
    assert sorted(calls) == [0, 1]  # format 2 unused: never encoded
    assert [s.writes for s in subs] == [[b"0:ch:a|b"], [b"1:ch:a|b"], [b"0:ch:a|b"], [b"0:ch:a|b"]]
    assert slow == []


def test_slow_and_closed_subscribers() -> None:
    """A subscriber past the bound is reported slow; a closed one is skipped and not counted."""
    fast, slow_one, closed = (
        FakeSubscriber(),
        FakeSubscriber(buffered=5000),
        FakeSubscriber(closed=True),
    )
    slow: list[FakeSubscriber] = []
    n = deliver(
        [fast, slow_one, closed],
        "c",
        [Envelope(b"x")],
        4096,
        slow,  # type: ignore[arg-type]
        (lambda c, m: b"x",),
    )
    assert n == 2 and slow == [slow_one] and closed.writes == []


def test_a_failing_subscriber_does_not_stop_the_channel() -> None:
    """A subscriber whose write raises is skipped; the ones after it still get the batch."""

    class Broken(FakeSubscriber):
        def send_batch(self, data: bytes) -> int:
            raise RuntimeError("transport is closed")

    after = FakeSubscriber()
    slow: list[FakeSubscriber] = []
    n = deliver(
        [FakeSubscriber(), Broken(), after],
        "c",
        [Envelope(b"x")],
        99,
        slow,  # type: ignore[arg-type]
        (lambda c, m: b"x",),
    )
    assert n == 2 and after.writes == [b"x"]


def test_per_connection_subscribers_encode_for_themselves() -> None:
    """A PER_CONNECTION subscriber gets the messages, and no shared encoding is built for it."""
    calls: list[str] = []

    def encode(channel: str, messages: list[Envelope]) -> bytes:
        calls.append(channel)
        return b"shared"

    own = FakeSubscriber(PER_CONNECTION)
    slow: list[FakeSubscriber] = []
    n = deliver([own], "c", [Envelope(b"a"), Envelope(b"b")], 99, slow, (encode,))  # type: ignore[arg-type]
    assert n == 2 and own.writes == [b"own:c:a|b"] and calls == []


def test_the_shipped_encoders_frame_raw_and_v1() -> None:
    """By default, format RAW gets raw frames and V1 gets hub.v1 JSON deliveries."""
    raw, v1 = FakeSubscriber(RAW), FakeSubscriber(V1)
    deliver([raw, v1], "c", [Envelope(b"hi")], 99, [])
    assert raw.writes == [b"\x81\x02hi"]
    assert v1.writes[0].endswith(b'{"type":"message","channel":"c","text":"hi"}')
