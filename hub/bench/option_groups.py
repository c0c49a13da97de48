"""The argument groups every ``hub bench`` scenario shares (targets, protocol, handshake,
sockets, thresholds, output, traffic), one function each, and the argument types they use.
``options.py`` puts them together into each scenario's parser."""

from __future__ import annotations

import argparse

from hub.bench.agents.options import add_agent_options
from hub.bench.config import CLIENTS
from hub.bench.header import HEADER_SIZE
from hub.bench.protocols import PROTOCOLS
from hub.bench.thresholds import METRICS, Threshold, ThresholdError, parse_threshold

__all__ = ["common", "fraction", "positive_int", "rate", "threshold_expression", "traffic"]


def rate(value: str) -> float | None:
    if value == "max":
        return None
    rate = float(value)
    if rate <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive, or 'max'")
    return rate


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def threshold_expression(value: str) -> Threshold:
    try:
        return parse_threshold(value)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a fraction between 0 and 1")
    return number


def common(parser: argparse.ArgumentParser, *, sockets_help: str, default_sockets: int) -> None:
    """The options of every scenario, one argument group after the other."""
    _targets(parser)
    _protocol(parser)
    _handshake(parser)
    _sockets(parser, sockets_help=sockets_help, default_sockets=default_sockets)
    _thresholds(parser)
    _output(parser)
    add_agent_options(parser)


def _targets(parser: argparse.ArgumentParser) -> None:
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


def _protocol(parser: argparse.ArgumentParser) -> None:
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


def _handshake(parser: argparse.ArgumentParser) -> None:
    """The upgrade request's headers, and TLS."""
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


def _sockets(parser: argparse.ArgumentParser, *, sockets_help: str, default_sockets: int) -> None:
    """How many sockets, over how many processes, opened how."""
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
        type=positive_int,
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
        type=positive_int,
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


def _thresholds(parser: argparse.ArgumentParser) -> None:
    verdict = parser.add_argument_group(
        "thresholds (exit status 1 when one is crossed)",
        "By default a run fails when no socket connected, or when any expected delivery was "
        "lost, duplicated or reordered; a threshold on loss, lost, duplicates or reordered "
        "replaces that figure's default.",
    )
    verdict.add_argument(
        "--max-p99-ms", type=float, metavar="MS", help="the largest acceptable p99 latency"
    )
    verdict.add_argument(
        "--max-loss",
        type=fraction,
        metavar="FRACTION",
        help="the largest acceptable share of expected messages lost, e.g. 0.001 "
        "(default: none may be lost)",
    )
    verdict.add_argument(
        "--min-connected",
        type=fraction,
        metavar="FRACTION",
        help="the smallest acceptable share of sockets connected, e.g. 0.99 "
        "(zero sockets connected always fails)",
    )
    verdict.add_argument(
        "--threshold",
        action="append",
        dest="thresholds",
        type=threshold_expression,
        default=[],
        metavar="EXPR",
        help="any figure of the report, METRIC OP NUMBER[UNIT] (repeatable): 'p99<50ms', "
        "'loss<=0.1%%', 'connected>=99%%', 'rate>=90000', 'duplicates<10'; one on loss, lost, "
        "duplicates or reordered replaces that figure's default of none; metrics: "
        + ", ".join(METRICS),
    )


def _output(parser: argparse.ArgumentParser) -> None:
    """The report's files, the live view and the exit status."""
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
        help="exit with status 1 also when any socket failed to connect or was closed, "
        "when any message is lost, duplicated or reordered even where a threshold allows it, "
        "and when the bench itself was the bottleneck (the table's bench-bound row)",
    )


def traffic(parser: argparse.ArgumentParser, *, messages_help: str, duration: float) -> None:
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
    traffic.add_argument("-m", "--messages", type=positive_int, default=None, help=messages_help)
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
