"""The run's settings from ``hub bench``'s parsed arguments (``options.py``): checked, and
sized to the open-file limit."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from typing import TypeVar

from hub.bench.config import AUTO_CLIENT, RunConfig
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

__all__ = ["config_from_args"]


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Check the arguments and size the run; raise SizingError when it cannot fit."""
    urls, handshake = _targets(args)
    scenario = args.scenario
    num_publishers = args.publishers if scenario == "fanout" else 0
    num_sockets = args.sockets
    ramp = _parsed(parse_ramp, args.ramp)
    if ramp:
        num_sockets = ramp[-1][1]  # the ramp's target is the socket count
    rate_phases = _parsed(parse_rate_phases, getattr(args, "rate_phases", None))
    if num_sockets < 1:
        raise SizingError("--sockets must be at least 1")
    total = num_sockets + num_publishers
    fd_limit = fd_hard_limit()
    procs = args.procs or default_procs(total, os.cpu_count() or 1, fd_limit)
    if not getattr(args, "agents", None):  # with agents, each agent's limit is checked
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


def _targets(args: argparse.Namespace) -> tuple[list[str], Handshake]:
    """The --url list, completed with the protocol's default path, and the handshake (a bad
    --ca-file is refused here, before any worker starts)."""
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
            ssl_context(handshake)
    except (ValueError, OSError) as exc:
        raise SizingError(str(exc)) from exc
    return urls, handshake


T = TypeVar("T")


def _parsed(parse: Callable[[str], tuple[T, ...]], text: str | None) -> tuple[T, ...]:
    """``parse(text)`` (empty without ``text``); a ValueError is a SizingError."""
    if not text:
        return ()
    try:
        return parse(text)
    except ValueError as exc:
        raise SizingError(str(exc)) from exc


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
