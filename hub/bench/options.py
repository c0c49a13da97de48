"""``hub bench``'s options: the argument parser of each scenario, and the run's settings
from the parsed arguments (checked, and sized to the open-file limit)."""

from __future__ import annotations

import argparse
import os
import secrets

from hub.bench.config import AUTO_CLIENT, CLIENTS, RunConfig
from hub.bench.header import HEADER_SIZE
from hub.bench.protocols import PROTOCOLS
from hub.bench.ramp import parse_ramp, parse_rate_phases
from hub.bench.sizing import (
    SizingError,
    check_fd_limit,
    default_procs,
    fd_hard_limit,
    pick_source_addrs,
)
from hub.bench.target import Handshake, ssl_context, with_default_path
from hub.bench.thresholds import METRICS, Threshold, ThresholdError, parse_threshold

__all__ = ["build_parser", "config_from_args"]


def _rate(value: str) -> float | None:
    if value == "max":
        return None
    rate = float(value)
    if rate <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive, or 'max'")
    return rate


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _threshold(value: str) -> Threshold:
    try:
        return parse_threshold(value)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a fraction between 0 and 1")
    return number


def _common(parser: argparse.ArgumentParser, *, sockets_help: str, default_sockets: int) -> None:
    target = parser.add_argument_group("targets")
    target.add_argument(
        "--url",
        action="append",
        dest="urls",
        metavar="URL",
        help="server to load, ws:// or wss:// (repeatable; sockets are split evenly over them). "
        "{channel} and {i} in the URL are replaced by the socket's channel and number; "
        "a URL with a path or query is otherwise kept exactly; only a bare ws://HOST:PORT "
        "assumes hub's raw layout, the channel as the path (default: ws://127.0.0.1:8765)",
    )
    target.add_argument(
        "--channel",
        default=None,
        help="channel name, or the prefix of the channel names (default: bench)",
    )
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="raw",
        help="what each socket speaks: raw frames (every frame is a message), hub.v1 "
        "(subscribe and publish frames) or socketio (Socket.IO v5 over Engine.IO v4, "
        "websocket transport; a bare ws://HOST:PORT gets /socket.io/?EIO=4&transport=websocket)",
    )
    protocol.add_argument(
        "--event",
        default="message",
        help="socketio: the event each message is emitted as, and relayed back as",
    )
    protocol.add_argument(
        "--join-event",
        metavar="EVENT",
        help="socketio: after connecting, emit EVENT with the channel name and wait for its ack "
        "(how a server puts the socket in a room; default: none, every socket hears everyone)",
    )
    handshake = parser.add_argument_group("handshake")
    handshake.add_argument(
        "-H",
        "--header",
        action="append",
        dest="headers",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header of every upgrade request (repeatable)",
    )
    handshake.add_argument(
        "--token", help="a JWT or other bearer token, sent as 'Authorization: Bearer TOKEN'"
    )
    handshake.add_argument("--subprotocol", help="the Sec-WebSocket-Protocol to ask for")
    handshake.add_argument("--origin", help="the Origin header")
    handshake.add_argument(
        "--ca-file", metavar="PEM", help="wss://: trust these CA certificates too"
    )
    handshake.add_argument(
        "--insecure",
        action="store_true",
        help="wss://: check no certificate (self-signed test servers)",
    )
    sockets = parser.add_argument_group("sockets")
    sockets.add_argument(
        "-n",
        "--sockets",
        type=int,
        default=default_sockets,
        help=f"{sockets_help} (default: {default_sockets})",
    )
    sockets.add_argument(
        "--procs",
        type=_positive_int,
        default=None,
        help="worker processes (default: one per CPU, no more than sockets, "
        "and as many as the open-file limit needs)",
    )
    sockets.add_argument(
        "--source-addr",
        action="append",
        dest="source_addrs",
        metavar="ADDR",
        help="local address to bind (repeatable); sockets are spread over them "
        "(default: none, or 127.0.0.1, 127.0.0.2, ... for loopback targets when one address "
        "pair would carry more than 25,000 sockets)",
    )
    sockets.add_argument(
        "--ramp",
        metavar="FROM:TO/SECONDSs,...",
        help="open the sockets in phases, evenly within each: 0:1000/10s,1000:10000/30s "
        "(the last TO is the socket count; default: as fast as --concurrency allows)",
    )
    sockets.add_argument(
        "--concurrency",
        type=_positive_int,
        default=256,
        help="WebSocket handshakes in flight at once, over all processes (default: 256)",
    )
    sockets.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time limit of one connection and handshake (default: 10)",
    )
    sockets.add_argument(
        "--client",
        choices=CLIENTS,
        default="auto",
        help="the receivers' WebSocket client: lean (a minimal asyncio protocol, about 1 KiB "
        "per idle socket), picows, or auto: what measured fastest for the scenario "
        "(default: auto; fan-out publishers always use picows)",
    )
    verdict = parser.add_argument_group("thresholds (exit status 1 when one is crossed)")
    verdict.add_argument(
        "--max-p99-ms", type=float, metavar="MS", help="the largest acceptable p99 latency"
    )
    verdict.add_argument(
        "--max-loss",
        type=_fraction,
        metavar="FRACTION",
        help="the largest acceptable share of expected messages lost, e.g. 0.001",
    )
    verdict.add_argument(
        "--min-connected",
        type=_fraction,
        metavar="FRACTION",
        help="the smallest acceptable share of sockets connected, e.g. 0.99 "
        "(zero sockets connected always fails)",
    )
    verdict.add_argument(
        "--threshold",
        action="append",
        dest="thresholds",
        type=_threshold,
        default=[],
        metavar="EXPR",
        help="any figure of the report, METRIC OP NUMBER[UNIT] (repeatable): 'p99<50ms', "
        "'loss<=0.1%%', 'connected>=99%%', 'rate>=90000', 'duplicates<1'; metrics: "
        + ", ".join(METRICS),
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="FILE", help="write the full report as JSON to FILE")
    output.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw latency over time and its histogram to FILE.png (needs matplotlib)",
    )
    output.add_argument(
        "--html",
        metavar="FILE.html",
        help="write one self-contained HTML report with the plots (needs matplotlib)",
    )
    output.add_argument(
        "--openmetrics",
        metavar="FILE",
        help="write OpenMetrics text for Prometheus (textfile collector, Pushgateway): the run "
        "so far about once a second while it runs (hub_bench_live_*), then its totals",
    )
    output.add_argument(
        "--interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="progress and timeline interval (default: 0.5)",
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no live progress or table")
    output.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when any message is lost, duplicated or reordered, "
        "or any socket failed to connect or was closed",
    )


def _traffic(parser: argparse.ArgumentParser, *, messages_help: str, duration: float) -> None:
    traffic = parser.add_argument_group("traffic")
    traffic.add_argument(
        "-s",
        "--size",
        type=int,
        default=64,
        help=f"message size in bytes; at least the {HEADER_SIZE}-byte header (default: 64)",
    )
    traffic.add_argument(
        "--payload-file",
        metavar="FILE",
        help="message bodies, one a line, sent in turn after the bench header (replaces --size)",
    )
    traffic.add_argument("-m", "--messages", type=_positive_int, default=None, help=messages_help)
    traffic.add_argument(
        "-d",
        "--duration",
        type=float,
        default=duration,
        metavar="SECONDS",
        help=f"time limit of the sending phase (default: {duration:g})",
    )
    traffic.add_argument(
        "--drain-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="after sending, how long to wait for messages still in flight (default: 5)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub bench",
        description="Load tester for WebSocket broadcast servers: every frame a client sends "
        "goes to every client of its URL (or channel), sender included. A bare ws://HOST:PORT "
        "is taken as hub's raw layout, ws://HOST:PORT/CHANNEL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")

    fanout = sub.add_parser(
        "fanout",
        help="N subscribers and P publishers on one channel",
        description="N subscribers on one channel and P publishers sending to it, at --rate "
        "messages/s or as fast as a window of messages in flight allows. Reports latency, "
        "loss, duplicates and reordering per publisher per subscriber.",
    )
    _common(fanout, sockets_help="subscribers", default_sockets=100)
    fanout.add_argument(
        "-p", "--publishers", type=_positive_int, default=1, help="publishers (default: 1)"
    )
    fanout.add_argument(
        "-r",
        "--rate",
        type=_rate,
        default=1000.0,
        help="messages per second over all publishers, or 'max' (default: 1000)",
    )
    fanout.add_argument(
        "--rate-phases",
        metavar="RATE/SECONDSs,...",
        help="step the rate through phases, e.g. 100/10s,1000/30s: 100 messages/s over all "
        "publishers for 10 s, then 1,000/s for 30 s (replaces --rate and --duration; the "
        "report gives each phase's throughput and latency)",
    )
    fanout.add_argument(
        "--window",
        type=_positive_int,
        default=64,
        help="with --rate max, messages each publisher may have in flight: sent and not yet "
        "back on its own socket (default: 64)",
    )
    _traffic(
        fanout,
        messages_help="messages to send over all publishers (default: until --duration)",
        duration=10.0,
    )

    echo = sub.add_parser(
        "echo",
        help="each client times its own round trips",
        description="N clients, each on its own channel, each sending a message as soon as its "
        "previous one came back. Reports the round-trip latency.",
    )
    _common(echo, sockets_help="clients", default_sockets=100)
    _traffic(
        echo,
        messages_help="round trips per client (default: until --duration)",
        duration=10.0,
    )

    conns = sub.add_parser(
        "conns",
        help="open N idle sockets and hold them",
        description="Open N idle sockets and hold them. Reports the connect rate, the failures, "
        "and the server's memory per connection: (RSS after connecting - RSS before) / N.",
    )
    _common(conns, sockets_help="sockets", default_sockets=1000)
    conns.add_argument(
        "--hold", type=float, default=5.0, metavar="SECONDS", help="hold time (default: 5)"
    )
    conns.add_argument(
        "--churn",
        type=_rate,
        default=None,
        metavar="PER_S",
        help="while holding, close and reopen this many sockets per second over all processes, "
        "to time handshakes and find leaks (default: none)",
    )
    conns.add_argument(
        "--channels",
        type=_positive_int,
        default=1,
        help="spread the sockets over this many channels, CHANNEL-0, CHANNEL-1, ... "
        "(default: 1, all on CHANNEL)",
    )
    memory = conns.add_argument_group("server memory")
    memory.add_argument(
        "--server-pid",
        type=int,
        action="append",
        dest="server_pids",
        default=[],
        metavar="PID",
        help="server process whose RSS to read (repeatable)",
    )
    memory.add_argument(
        "--server-children",
        action="store_true",
        help="add the RSS of the server processes' descendants (workers, redis-server)",
    )
    memory.add_argument(
        "--metrics-url",
        help="read the RSS from this Prometheus URL (sum of process_resident_memory_bytes) "
        "when no --server-pid is given",
    )
    memory.add_argument(
        "--settle",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="wait after connecting before reading the RSS (default: 1)",
    )

    bcast = sub.add_parser(
        "broadcast-all",
        help="one message to every held socket, timed until the last one has it",
        description="Hold N sockets, then send one message to all of them: with --channels K, "
        "the first socket of each channel sends that channel's copy. Reports how many got it "
        "and the arrival latency (p50/p99/max), and the time until the last socket had it.",
    )
    _common(bcast, sockets_help="sockets", default_sockets=1000)
    bcast.add_argument(
        "--channels",
        type=_positive_int,
        default=1,
        help="spread the sockets over this many channels (default: 1: --channel, one channel)",
    )
    bcast.add_argument(
        "--rounds",
        type=_positive_int,
        default=1,
        help="messages to all, one after the other (default: 1)",
    )
    bcast.add_argument(
        "--round-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for every socket to have a round's message (default: 10)",
    )
    bcast.add_argument(
        "-s",
        "--size",
        type=int,
        default=64,
        help=f"message size in bytes; at least the {HEADER_SIZE}-byte header (default: 64)",
    )
    return parser


def _payloads(path: str | None) -> tuple[bytes, ...]:
    if path is None:
        return ()
    try:
        with open(path, "rb") as file:
            lines = tuple(line.rstrip(b"\r\n") for line in file)
    except OSError as exc:
        raise SizingError(f"--payload-file {path!r}: {exc.strerror}") from exc
    if not lines:
        raise SizingError(f"--payload-file {path!r} has no lines")
    return lines


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Check the arguments and size the run; raise SizingError when it cannot fit."""
    urls = args.urls or ["ws://127.0.0.1:8765"]
    for url in urls:
        if not url.startswith(("ws://", "wss://")):
            raise SizingError(f"--url {url!r}: expected ws://HOST[:PORT][/PATH] or wss://...")
    adapter = PROTOCOLS[args.protocol]
    if args.join_event and args.protocol != "socketio":
        raise SizingError("--join-event is a socketio option: add --protocol socketio")
    if adapter.default_path:
        urls = [with_default_path(url, adapter.default_path) for url in urls]
    try:
        handshake = Handshake.build(
            args.headers,
            args.token,
            args.subprotocol or adapter.subprotocol,
            args.origin,
            args.ca_file,
            args.insecure,
        )
        if any(u.startswith("wss://") for u in urls):
            ssl_context(handshake)  # a bad --ca-file is refused before any worker starts
    except (ValueError, OSError) as exc:
        raise SizingError(str(exc)) from exc
    scenario = args.scenario
    num_publishers = args.publishers if scenario == "fanout" else 0
    num_sockets = args.sockets
    ramp: tuple[tuple[int, int, float], ...] = ()
    if args.ramp:
        try:
            ramp = parse_ramp(args.ramp)
        except ValueError as exc:
            raise SizingError(str(exc)) from exc
        num_sockets = ramp[-1][1]  # the ramp's target is the socket count
    rate_phases: tuple[tuple[float, float], ...] = ()
    if getattr(args, "rate_phases", None):
        try:
            rate_phases = parse_rate_phases(args.rate_phases)
        except ValueError as exc:
            raise SizingError(str(exc)) from exc
    if num_sockets < 1:
        raise SizingError("--sockets must be at least 1")
    total = num_sockets + num_publishers
    fd_limit = fd_hard_limit()
    procs = args.procs or default_procs(total, os.cpu_count() or 1, fd_limit)
    check_fd_limit(total, procs, fd_limit)
    num_channels = getattr(args, "channels", 1)
    if num_channels > num_sockets:
        raise SizingError(f"--channels {num_channels} is more than --sockets {num_sockets}")
    size = getattr(args, "size", 64)
    if size < HEADER_SIZE:
        raise SizingError(f"--size {size} is smaller than the {HEADER_SIZE}-byte header")
    return RunConfig(
        scenario=scenario,
        urls=urls,
        procs=procs,
        num_sockets=num_sockets,
        num_publishers=num_publishers,
        channel=args.channel or "bench",
        num_channels=num_channels,
        source_addrs=pick_source_addrs(total, urls, args.source_addrs),
        concurrency=args.concurrency,
        connect_timeout_s=args.connect_timeout,
        size=size,
        rate=rate_phases[0][0] if rate_phases else getattr(args, "rate", None),
        rate_phases=rate_phases,
        window=getattr(args, "window", 64),
        messages=getattr(args, "messages", None),
        duration_s=sum(p[1] for p in rate_phases) or getattr(args, "duration", 10.0),
        drain_timeout_s=getattr(args, "drain_timeout", 5.0),
        rounds=getattr(args, "rounds", 1),
        round_timeout_s=getattr(args, "round_timeout", 10.0),
        interval_s=args.interval,
        # Resolved here, so that the report says which client ran.
        client=AUTO_CLIENT[scenario] if args.client == "auto" else args.client,
        handshake=handshake,
        run_id=secrets.randbits(32),
        ramp=ramp,
        protocol=args.protocol,
        event=args.event,
        join_event=args.join_event,
        payloads=_payloads(getattr(args, "payload_file", None)),
        churn_rate=getattr(args, "churn", None) or 0.0,
        max_p99_ms=args.max_p99_ms,
        max_loss=args.max_loss,
        min_connected=args.min_connected,
        thresholds=tuple(args.thresholds),
    )
