"""A script run's settings from ``hub bench script``'s arguments: the executor chosen and
checked, the script loaded once here (a script that does not import, or has no ``user``,
stops the run before anything connects), its text and data put in the RunConfig."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from hub.bench.config import RunConfig
from hub.bench.script.load import ScriptError, load_data, load_script, read_script
from hub.bench.script.spec import CONSTANT, RAMPING, RATE, Executor, ScriptSpec, parse_stages
from hub.bench.sizing import SizingError
from hub.bench.target import Handshake, ssl_context
from hub.bench.thresholds import Threshold

__all__ = ["script_config"]

#: Unless a threshold on errors says otherwise, a run with any VU error fails.
NO_ERRORS = Threshold("errors = 0", "errors", "<=", 0.0)


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The one executor the flags ask for; SizingError names the flags that clash."""
    grace = args.graceful_stop
    if grace < 0:
        raise SizingError("--graceful-stop must be 0 or more")
    if args.stages:
        clash = [f for f, v in (("--vus", args.vus), ("--duration", args.duration)) if v]
        if args.arrival_rate or clash:
            drop = ", ".join(clash) or "--arrival-rate"
            raise SizingError(f"--stages sets the VUs and the time itself: drop {drop}")
        try:
            stages = parse_stages(args.stages)
        except ValueError as exc:
            raise SizingError(str(exc)) from None
        return Executor(RAMPING, max(t for _, t in stages), 0.0, stages, graceful_stop_s=grace)
    duration = args.duration or 10.0
    if args.arrival_rate:
        if args.vus:
            raise SizingError("--arrival-rate takes --max-vus, not --vus")
        if not args.max_vus:
            raise SizingError(
                "--arrival-rate R needs --max-vus N: the most VUs that may run at once"
            )
        return Executor(RATE, args.max_vus, duration, rate=args.arrival_rate, graceful_stop_s=grace)
    if args.max_vus:
        raise SizingError("--max-vus goes with --arrival-rate; constant VUs take --vus")
    return Executor(CONSTANT, args.vus or 1, duration, graceful_stop_s=grace)


def script_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of a script run; SizingError (exit status 2) says what to fix."""
    executor = executor_from_args(args)
    urls = args.urls or ["ws://127.0.0.1:8765"]
    for url in urls:
        if not url.startswith(("ws://", "wss://")):
            raise SizingError(f"--url {url!r}: expected ws://HOST[:PORT][/PATH] or wss://...")
    try:
        text = read_script(args.file)
        load_script(text, args.file)
        data = load_data(args.data) if args.data else ()
        handshake = Handshake.build(
            args.headers, args.token, args.subprotocol, args.origin, args.ca_file, args.insecure
        )
        if any(u.startswith("wss://") for u in urls):
            ssl_context(handshake)
    except (ScriptError, ValueError, OSError) as exc:
        raise SizingError(str(exc)) from None
    procs = args.procs or max(1, min(os.cpu_count() or 1, executor.vus))
    procs = min(procs, executor.vus)
    thresholds = tuple(args.thresholds)
    if not any(t.metric == "errors" for t in thresholds):
        thresholds += (NO_ERRORS,)
    spec = ScriptSpec(
        text=text,
        filename=str(Path(args.file)),
        executor=executor,
        data=data,
        protocol=args.protocol,
    )
    total_s = sum(s for s, _ in executor.stages) or executor.duration_s
    return RunConfig(
        scenario="script",
        urls=urls,
        procs=procs,
        num_sockets=0,
        connect_timeout_s=args.connect_timeout,
        duration_s=total_s + executor.graceful_stop_s,
        interval_s=args.interval,
        client="lean",
        handshake=handshake,
        run_id=secrets.randbits(32),
        max_p99_ms=args.max_p99_ms,
        max_loss=args.max_loss,
        min_connected=args.min_connected,
        thresholds=thresholds,
        script=spec,
    )
