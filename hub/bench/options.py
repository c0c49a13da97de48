"""``hub bench``'s command line: one subcommand per scenario, each with the shared argument
groups (``option_groups.py``) and its own options. ``from_args.py`` makes the run's settings of
what it parsed."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hub import DISTRIBUTION
from hub.bench.agents.options import add_agent_command
from hub.bench.header import HEADER_SIZE
from hub.bench.option_groups import common, positive_int, rate, traffic

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub bench",
        description="Load tester for WebSocket broadcast servers: every frame a client sends "
        "goes to every client of its URL (or channel), sender included. A bare ws://HOST:PORT "
        "is taken as hub's raw layout, ws://HOST:PORT/CHANNEL. " + VERDICT,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="COMMAND")
    _fanout(sub)
    _echo(sub)
    _conns(sub)
    _broadcast_all(sub)
    _plot(sub)
    add_agent_command(sub)
    return parser


#: The default verdict, as --help says it (docs/bench.md, "Exit status and thresholds").
VERDICT = (
    "Exit status 1 when no socket connected, or when any expected delivery was lost, "
    "duplicated or reordered: a threshold on the figure loosens that (--threshold "
    "'loss<1%', 'duplicates<10', 'reordered<10', or --max-loss); --strict also fails on any "
    "socket that failed to connect or was closed, and on any --agents agent lost. One line "
    "gives the verdict, even with -q."
)


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _fanout(sub: Subparsers) -> None:
    fanout = sub.add_parser(
        "fanout",
        help="N subscribers and P publishers on one channel",
        description="N subscribers on one channel and P publishers sending to it, at --rate "
        "messages/s or as fast as a window of messages in flight allows. Reports latency, "
        "loss, duplicates and reordering per publisher per subscriber.",
    )
    common(fanout, sockets_help="subscribers", default_sockets=100)
    fanout.add_argument(
        "-p", "--publishers", type=positive_int, default=1, help="publishers (default: 1)"
    )
    fanout.add_argument(
        "-r",
        "--rate",
        type=rate,
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
        type=positive_int,
        default=64,
        help="with --rate max, messages each publisher may have in flight: sent and not yet "
        "back on its own socket (default: 64)",
    )
    traffic(
        fanout,
        messages_help="messages to send over all publishers (default: until --duration)",
        duration=10.0,
    )


def _echo(sub: Subparsers) -> None:
    echo = sub.add_parser(
        "echo",
        help="each client times its own round trips",
        description="N clients, each on its own channel, each sending a message as soon as its "
        "previous one came back, or at --rate messages/s over all clients. Reports the "
        "round-trip latency.",
    )
    common(echo, sockets_help="clients", default_sockets=100)
    echo.add_argument(
        "-r",
        "--rate",
        type=rate,
        default=None,
        help="round trips started per second over all clients, as fanout's --rate is over all "
        "publishers (each client sends rate / N, on its schedule, without waiting for its "
        "previous message), or 'max': each client sends its next message as soon as its "
        "previous one is back (default: max)",
    )
    traffic(
        echo,
        messages_help="round trips per client (default: until --duration)",
        duration=10.0,
    )


def _conns(sub: Subparsers) -> None:
    conns = sub.add_parser(
        "conns",
        help="open N idle sockets and hold them",
        description="Open N idle sockets and hold them. Reports the connect rate, the failures, "
        "and the server's memory per connection: (RSS after connecting - RSS before) / N.",
    )
    common(conns, sockets_help="sockets", default_sockets=1000)
    conns.add_argument(
        "--hold", type=float, default=5.0, metavar="SECONDS", help="hold time (default: 5)"
    )
    conns.add_argument(
        "--churn",
        type=rate,
        default=None,
        metavar="PER_S",
        help="while holding, close and reopen this many sockets per second over all processes, "
        "to time handshakes and find leaks (default: none)",
    )
    conns.add_argument(
        "--channels",
        type=positive_int,
        default=1,
        help="spread the sockets over this many channels, CHANNEL-0, CHANNEL-1, ... "
        "(default: 1, all on CHANNEL)",
    )
    _server_memory(conns)


def _server_memory(conns: argparse.ArgumentParser) -> None:
    """conns: where to read the server's memory, and when."""
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


def _broadcast_all(sub: Subparsers) -> None:
    bcast = sub.add_parser(
        "broadcast-all",
        help="one message to every held socket, timed until the last one has it",
        description="Hold N sockets, then send one message to all of them: with --channels K, "
        "the first socket of each channel sends that channel's copy. Reports how many got it "
        "and the arrival latency (p50/p99/max), and the time until the last socket had it.",
    )
    common(bcast, sockets_help="sockets", default_sockets=1000)
    bcast.add_argument(
        "--channels",
        type=positive_int,
        default=1,
        help="spread the sockets over this many channels (default: 1: --channel, one channel)",
    )
    bcast.add_argument(
        "--rounds",
        type=positive_int,
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


def _plot(sub: Subparsers) -> None:
    plot = sub.add_parser(
        "plot",
        help="draw the pictures of a --json report (--plot, --html)",
        description="Draw the pictures of a run from its --json report, as --plot and --html "
        "would have during the run: for a run on a machine without matplotlib. Without "
        "--plot or --html, draws RUN.png next to RUN.json. Needs matplotlib: pip install "
        f"'{DISTRIBUTION}[plot]'.",
    )
    plot.add_argument("report", metavar="RUN.json", help="a report written by --json")
    plot.add_argument(
        "--plot", metavar="FILE.png", help="draw latency over time and its histogram to FILE.png"
    )
    plot.add_argument(
        "--html", metavar="FILE.html", help="write one self-contained HTML report with the plots"
    )
