"""``hub bench script``'s command line, and the help that teaches a script in five minutes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hub.bench.option_groups import positive_int
from hub.bench.script.protocols import CODECS

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["EXAMPLE", "add_script_parser"]

EXAMPLE = """\
A script is a Python file that defines one coroutine, one iteration of one virtual user:

    # chat.py: join a room, say hello, wait to hear it back, think, leave
    async def user(vu):
        room = f"/room-{vu.id % 10}"                  # a path on --url
        with vu.metric("room_join").time():           # a custom trend, in ms
            await vu.connect(room)
        vu.send({"from": vu.id, "n": vu.iteration})   # dict/list: JSON text
        echo = await vu.expect(lambda m: f'"from":{vu.id},' in m, timeout=5)
        vu.check("heard my own message", echo is not None)
        await vu.sleep(1, 3)                          # think 1 to 3 s

    hub bench script chat.py --url ws://127.0.0.1:8765 --vus 50 --duration 30s \\
        --threshold 'checks>99%' --threshold 'expect_latency.p95<200ms' \\
        --threshold 'room_join.p99<1s'

The vu:
  vu.id, vu.iteration     0..VUs-1 over all --procs; this VU's iteration, from 0
  vu.data                 its row of --data FILE.csv (row vu.id % rows), a dict
  await vu.connect(url=None, subprotocols=[], headers={}, protocol=None)
                          url: ws://... whole, "/path" on --url, or None: --url;
                          protocol: raw, hub.v1 or socketio (default: --protocol);
                          returns the connection; a failure raises ConnectError
  vu.send(data)           on the latest connection: str text, bytes binary, else JSON
  await vu.expect(pred, timeout=5)
                          the next frame with pred(frame) true (None: any), or None on
                          timeout; its latency goes to the expect_latency trend
  await vu.sleep(s[, max_s])   think time (random between s and max_s)
  vu.check(name, ok)      counted; 'checks>99%' is the pass rate of all of them
  vu.metric(name).add(ms) a custom trend; 'with vu.metric(name).time():' times a block
  conn.send / conn.expect / conn.close   the same on one connection of several
  hub.v1: await conn.subscribe(channel, recover=old.positions), conn.publish(channel, data)
  socketio: conn.emit(event, *args), await conn.call(event, *args) (its ack),
            await conn.expect_event(event, pred=None, timeout=5) (frames: .name .args .data)

Connections an iteration opened are closed when it ends. An exception ends its iteration: it
is counted by kind, the first of each kind is printed with its traceback, and the run goes on
(by default a run with any error fails: --threshold 'errors<10' allows some).
Executors: --vus N --duration D (constant VUs, each iterating until D); --stages
10s:100,30s:1000,10s:0 (ramping VUs); --arrival-rate R --max-vus N (R iterations started
per second, each by a free VU; one due when none is free is dropped and counted).
Thresholds: every scenario's, and 'checks>99%', 'errors<10', 'iterations>100', and
NAME.STAT on any trend (expect_latency, iteration_duration or your own): STAT one of p50 p90
p95 p99 p999 min max mean (ms by default, us, s) or count: 'room_join.p99<1s'.
Examples: examples/bench/ (a chat room, a Socket.IO chat, a hub.v1 client that recovers).
"""


def _duration(value: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if value.endswith(unit):
            number, scale = value[: -len(unit)], units[unit]
            break
    else:
        number, scale = value, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration: 30, 30s, 2m") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a duration is more than 0")
    return seconds


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return number


def add_script_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """The ``script`` subcommand, less the groups every command shares (handshake,
    thresholds, output), which ``options.py`` adds."""
    script = sub.add_parser(
        "script",
        help="virtual users that run your own Python script (async def user(vu))",
        description="Run FILE.py's 'async def user(vu)' as virtual users, on the lean "
        "client, over\n--procs worker processes, with exact counts, checks, trends and "
        "thresholds.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    script.add_argument("file", metavar="FILE.py", help="the script")
    target = script.add_argument_group("targets")
    target.add_argument(
        "--url",
        action="append",
        dest="urls",
        metavar="URL",
        help="what vu.connect() opens by default, and what a '/path' is on (repeatable: VU "
        "id %% count picks one; default: ws://127.0.0.1:8765)",
    )
    target.add_argument(
        "--protocol",
        choices=tuple(CODECS),
        default="raw",
        help="what vu.connect() speaks unless told (default: raw)",
    )
    load = script.add_argument_group("executor (one of the three)")
    load.add_argument("--vus", type=positive_int, help="constant VUs (default: 1)")
    load.add_argument(
        "-d", "--duration", type=_duration, help="how long: 30, 30s, 2m (default: 10s)"
    )
    load.add_argument("--stages", metavar="D:N,...", help="ramping VUs: 10s:100,30s:1000,10s:0")
    load.add_argument(
        "--arrival-rate", type=_positive, metavar="R", help="iterations started per second"
    )
    load.add_argument("--max-vus", type=positive_int, help="with --arrival-rate: the VU pool")
    load.add_argument(
        "--graceful-stop",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long iterations still running at the end may finish before they are "
        "interrupted (default: 5)",
    )
    load.add_argument("--data", metavar="FILE.csv", help="per-VU data: a CSV with a header")
    procs = script.add_argument_group("processes")
    procs.add_argument(
        "--procs", type=positive_int, help="worker processes (default: one per CPU, at most VUs)"
    )
    procs.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time limit of one vu.connect() (default: 10)",
    )
    return script
