"""hub.bench.agents: the wire between a controller and its agents. Every message kind, the
run's config and the HDR histograms cross it as tagged JSON and come out equal; nothing but a
hub.bench dataclass can be named by a peer; a frame that is too big, a silent peer and a
wrong token are refused; the clock moves every ``*_ns`` time and nothing else."""

from __future__ import annotations

import dataclasses
import socket
import threading
import typing
from typing import Any

import pytest

from hub.bench import messages
from hub.bench.agents.clock import shift
from hub.bench.agents.codec import CodecError, decode, dumps, encode, loads
from hub.bench.agents.controller import parse_agents
from hub.bench.agents.frames import MAX_FRAME, Channel, ChannelClosed
from hub.bench.agents.handshake import HandshakeError, agent_side, controller_side, proof
from hub.bench.agents.summary import AgentRecord, clock_skew
from hub.bench.from_args import config_from_args
from hub.bench.messages import Command, Event, Progress, RoundDone, Snapshot, Start
from hub.bench.options import build_parser
from hub.bench.script.totals import ScriptTotals
from hub.bench.sizing import SizingError
from hub.bench.stats import LatencyRecorder, Tally, merge_encoded

KINDS = [
    k for k in vars(messages).values() if k in Command.__subclasses__() + Event.__subclasses__()
]

#: A value of each field type the messages use, awkward where JSON alone would lose it.
VALUES: dict[Any, Any] = {
    int: 1 << 40,
    float: 2.5,
    str: 'a "quoted" \u00e9',
    bytes: b"\x00\xff{}",
    dict[int, int]: {3: 4, -1: 0},
    dict[str, int]: {"OSError": 2},
    dict[str, float]: {"max_ms": 1.5},
    list[int]: [5, 6],
    Tally: Tally(received=9, unique=8, duplicates=1),
    Snapshot: Snapshot(connected=3, interval_hist=b"\x01\x02", t_ns=77),
    # A script's counts: tuples and bytes inside dicts, which JSON alone would turn into lists
    # and strings.
    ScriptTotals: ScriptTotals(
        iterations=7,
        errors={"ValueError: x (chat.py:3)": 2},
        tracebacks={"ValueError: x (chat.py:3)": "Traceback ..."},
        checks={"heard": (5, 1)},
        trends={"expect_latency": b"\x1c\x84\x93\x13"},
        expects={"matched": 5},
    ),
}


def sample(kind: type) -> Any:
    hints = typing.get_type_hints(kind)
    return kind(**{f.name: VALUES[hints[f.name]] for f in dataclasses.fields(kind)})


def test_every_kind_of_messages_py_is_checked() -> None:
    defined = {k for k in vars(messages).values() if isinstance(k, type) and k in KINDS}
    assert len(defined) == len(KINDS) >= 14


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_message_kind_crosses_the_wire_unchanged(kind: type) -> None:
    message = sample(kind)
    assert decode(loads(dumps({"type": "event", "v": encode(message)}))["v"]) == message


def test_the_run_config_crosses_unchanged() -> None:
    args = build_parser().parse_args(
        [
            *("fanout", "--url", "ws://127.0.0.1:9/x", "--threshold", "p99<50ms", "-H", "A: b"),
            *("--rate-phases", "10/1s,20/2s", "--procs", "2"),
        ]
    )
    config = config_from_args(args)
    assert decode(loads(dumps({"type": "run", "c": encode(config)}))["c"]) == config


def test_hdr_histograms_keep_every_count() -> None:
    recorder = LatencyRecorder()
    for value in (1, 250, 250, 9_000, 1_000_000):
        recorder.add(value)
    recorder.flush()
    blob = recorder.total.encode()
    back = decode(loads(dumps({"type": "x", "h": encode(blob)}))["h"])
    merged = merge_encoded([back, back])
    assert merged.get_total_count() == 10
    assert merged.get_value_at_percentile(100) == recorder.total.get_max_value()


@pytest.mark.parametrize(
    "data",
    [
        {"$dc": "os:system", "f": {}},
        {"$dc": "subprocess:Popen", "f": {"args": "true"}},
        {"$dc": "hub.bench.worker:run_worker", "f": {}},  # a function, not a dataclass
        {"$dc": "hub.bench.nothing:Here", "f": {}},
        {"$dc": "hub.bench.messages:Start", "f": {"t0_ns": 1, "extra": 2}},  # another version
        {"$pickle": "gASV"},
        {"a": 1, "b": 2, "c": 3},
    ],
)
def test_a_peer_can_name_nothing_but_a_hub_bench_dataclass(data: dict[str, Any]) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_only_hub_bench_dataclasses_are_encoded() -> None:
    @dataclasses.dataclass
    class Elsewhere:
        x: int

    with pytest.raises(CodecError):
        encode(Elsewhere(1))
    with pytest.raises(CodecError):
        encode({1, 2})


def test_clock_moves_every_ns_time_nested_or_not_and_keeps_zero() -> None:
    progress = Progress(worker=1, snapshot=Snapshot(frames=5, t_ns=1_000))
    assert shift(progress, 10).snapshot == Snapshot(frames=5, t_ns=1_010)
    done = RoundDone(1, 0, 3, 3, first_send_ns=0, last_arrival_ns=500, hist=b"")
    moved = shift(done, -100)
    assert (moved.first_send_ns, moved.last_arrival_ns, moved.received) == (0, 400, 3)
    assert shift(Start(t0_ns=5), 0) == Start(t0_ns=5)


def pair() -> tuple[Channel, Channel]:
    """Both ends of one real loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return Channel(a, "a"), Channel(b, "b")


def test_a_frame_too_big_or_a_silent_peer_closes_the_channel() -> None:
    a, b = pair()
    a.sock.sendall((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ChannelClosed, match="passes"):
        b.recv(2)
    c, d = pair()
    with pytest.raises(ChannelClosed, match=r"silent for 0\.2 s"):
        d.recv(0.2)
    c.close()
    with pytest.raises(ChannelClosed, match="connection closed"):
        d.recv(2)


def handshake(agent_token: str, controller_token: str) -> tuple[Any, BaseException | None]:
    agent, controller = pair()
    caught: list[BaseException] = []

    def serve() -> None:
        try:
            agent_side(agent, agent_token)
        except (HandshakeError, ChannelClosed) as exc:
            caught.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        info: Any = controller_side(controller, controller_token)
        controller.send({"type": "run"})
    except HandshakeError as exc:
        info = exc
    thread.join(10)
    return info, caught[0] if caught else None


def test_the_token_proves_itself_both_ways_and_the_clock_is_measured() -> None:
    info, refused = handshake("s3cret", "s3cret")
    assert refused is None
    assert info.cpus >= 1 and info.fd_limit > 0
    # One machine, one monotonic clock: the offset is within the round trip.
    assert abs(info.offset_ns) <= info.rtt_ns


def test_a_wrong_token_is_refused_on_both_sides() -> None:
    info, refused = handshake("s3cret", "guess")
    assert isinstance(info, HandshakeError) and "wrong token" in str(info)
    assert isinstance(refused, HandshakeError)


def test_the_proof_depends_on_token_role_and_nonce() -> None:
    base = proof("t", "agent", "n")
    assert base != proof("u", "agent", "n") != proof("t", "controller", "n")
    assert base != proof("t", "agent", "m") and base == proof("t", "agent", "n")


def test_agents_are_host_port_pairs() -> None:
    assert parse_agents("10.0.0.1:7000, [::1]:7001") == [("10.0.0.1", 7000), ("::1", 7001)]
    for bad in ("nohost", "h:0", "h:x", "h:1,h:1"):
        with pytest.raises(SizingError):
            parse_agents(bad)


def test_agents_on_separate_clocks_are_warned_of_where_latency_crosses_them() -> None:
    config = config_from_args(build_parser().parse_args(["fanout", "-n", "4", "--procs", "2"]))
    one = [AgentRecord("a:1", offset_ns=3_000, rtt_ns=80_000), AgentRecord("b:1", offset_ns=-2_000)]
    apart = [AgentRecord("a:1", offset_ns=0), AgentRecord("b:1", offset_ns=5_000_000_000)]
    assert clock_skew(config, one) is None
    warning = clock_skew(config, apart)
    assert warning is not None and "differ by up to 5,000.0 ms (a:1 and b:1)" in warning
    echo = dataclasses.replace(config, scenario="echo")  # a round trip is timed on one clock
    assert clock_skew(echo, apart) is None


def test_another_version_is_refused_with_what_to_do() -> None:
    agent, controller = pair()
    caught: list[BaseException] = []

    def serve() -> None:
        try:
            agent_side(agent, "s3cret")
        except HandshakeError as exc:
            caught.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    hello = controller.recv(5)
    controller.send(
        {
            "type": "auth",
            "protocol": hello["protocol"],
            "version": "0.0.1",
            "proof": "",
            "nonce": "",
        }
    )
    refused = controller.recv(5)
    thread.join(10)
    assert refused["type"] == "refused"
    assert "controller hub 0.0.1" in refused["error"] and "same version" in refused["error"]
    assert caught and "same version" in str(caught[0])
