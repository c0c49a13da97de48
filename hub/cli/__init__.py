"""The ``hub`` command: ``serve``, ``publish``, ``listen``, ``token``, ``check``, ``bench``,
and the flags of each."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from hub import DISTRIBUTION, __version__
from hub.core.config import OPTIONS, Settings, config_as_toml, describe_default, parse_bytes
from hub.core.errors import ConfigError
from hub.runtime.signals import exit_on_signals

__all__ = ["build_parser", "main"]

_GROUPS = {
    "server": "listening",
    "broker": "broker (Redis)",
    "history": "history, recovery and presence",
    "limits": "limits",
    "auth": "access control",
    "hooks": "backend hooks",
    "api": "HTTP publish API",
    "ws": "WebSocket",
    "logging": "logging",
}


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; each also reads its HUB_* environment variable."""
    groups = {key: parser.add_argument_group(title) for key, title in _GROUPS.items()}
    for opt in OPTIONS:
        group = groups.get(opt.group, parser)
        help_text = f"{opt.help} [env {opt.env}; default: {describe_default(opt.default)}]"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": None, "help": help_text}
        if opt.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = parse_bytes if opt.name.endswith("_bytes") else opt.type
            kwargs["metavar"] = "URL" if opt.name == "redis_url" else opt.name.upper()
        if opt.name == "proxy_headers":  # repeatable: joined with commas
            kwargs.update(action="append", metavar="NAME")
        group.add_argument(opt.flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub",
        description="hub: a WebSocket pub/sub broadcast hub. Every message a client sends "
        "reaches every subscriber of its channel on every hub process that shares the Redis.",
        epilog="Run 'hub COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"hub {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="accept WebSocket connections and fan messages out through Redis",
        description="Serve WebSocket clients at ws://HOST:PORT/<channel>. Every flag can also "
        "be set by its HUB_* environment variable, or in the --config file under its TOML key "
        "(--print-config prints them all); a flag wins over the environment, which wins over "
        "the file.",
    )
    add_settings_flags(serve)
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print every setting as the config file's TOML (its key, its value now, where "
        "that came from: flag, env, file or default, and its help) and exit without serving",
    )
    publish = commands.add_parser(
        "publish",
        help="publish one message to a channel, through Redis, a hub's WebSocket or its API",
        description="Publish MESSAGE to CHANNEL: straight into Redis (--redis, or HUB_REDIS_URL) "
        "with the hub's envelope, as a hub.v1 client of a hub (--url ws://HOST:PORT), or "
        "through a hub's HTTP API (--api URL --api-key KEY).",
    )
    publish.add_argument("channel", metavar="CHANNEL")
    publish.add_argument("message", metavar="MESSAGE", help="the message; '-' reads stdin")
    publish.add_argument(
        "--kind",
        choices=("text", "json", "binary"),
        default="text",
        help="text (default), json (MESSAGE must parse; hub.v1 clients get it as 'data'), "
        "or binary (use '-' to pipe bytes in)",
    )
    publish.add_argument("--redis", metavar="URL", help="Redis URL [env HUB_REDIS_URL]")
    publish.add_argument(
        "--channel-prefix", default=None, help="Redis channel prefix [env HUB_CHANNEL_PREFIX]"
    )
    publish.add_argument(
        "--config",
        metavar="FILE",
        help="the hubs' config file: a history channel is published through the history "
        "script, so its message gets an offset; without it, a channel whose history is in "
        "Redis is refused (exit 2) [env HUB_CONFIG]",
    )
    publish.add_argument("--api", metavar="URL", help="the hub's API, e.g. http://127.0.0.1:8766")
    publish.add_argument("--api-key", metavar="KEY", help="API key [env HUB_API_KEY]")
    publish.add_argument(
        "--url",
        metavar="URL",
        action="append",
        help="publish as a hub.v1 client of this hub, e.g. ws://127.0.0.1:8765 (repeat it "
        "for failover)",
    )
    publish.add_argument("--token", metavar="JWT", help="JWT for --url [env HUB_TOKEN]")
    add_reach_flags(publish, timeout_s=10, waits="for the connection and the answer")
    _add_client_commands(commands)
    commands.add_parser(
        "bench",
        help="load-test any WebSocket server: raw frames, hub.v1 or Socket.IO ('hub bench -h')",
        add_help=False,
    )
    return parser


def add_reach_flags(parser: argparse.ArgumentParser, *, timeout_s: float, waits: str) -> None:
    """--timeout, and the TLS trust of wss:// and https:// URLs: --ca-file or --insecure."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout_s,
        metavar="S",
        help=f"give up (exit 1, with the reason) after S seconds {waits}; 0: keep trying "
        f"[default: {timeout_s:g}]",
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument(
        "--ca-file",
        metavar="FILE",
        help="trust the CA certificates in this PEM file for wss:// and https:// URLs (e.g. a "
        "self-signed hub's certificate) [default: the system's CAs]",
    )
    trust.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the certificate of wss:// and https:// URLs (for testing only)",
    )


def _add_client_commands(commands: Any) -> None:
    """``hub listen``, ``hub token`` and ``hub check``."""
    listen = commands.add_parser(
        "listen",
        help="print what arrives on a channel, one line per message, across hub restarts",
        description="Subscribe to CHANNEL as a hub.v1 client and print each message on one "
        "line, reconnecting (and recovering history channels) on its own.",
    )
    listen.add_argument("channel", metavar="CHANNEL")
    listen.add_argument(
        "--url",
        metavar="URL",
        action="append",
        help="a hub, e.g. ws://127.0.0.1:8765 (the default); repeat it for failover",
    )
    listen.add_argument(
        "--since",
        metavar="EPOCH:OFFSET",
        help="on a history channel, start after this position (what --json prints)",
    )
    listen.add_argument(
        "--json",
        action="store_true",
        help="print each message as a JSON object with its channel, epoch and offset",
    )
    listen.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    listen.add_argument("--token", metavar="JWT", help="JWT to connect with [env HUB_TOKEN]")
    listen.add_argument(
        "--token-command",
        metavar="CMD",
        help="shell command that prints a fresh JWT, run before connecting without --token "
        "and whenever the token expires (e.g. \"hub token --channels 'news' --ttl 1h\")",
    )
    listen.add_argument(
        "--backoff-max-s",
        type=float,
        default=5.0,
        metavar="S",
        help="longest pause between reconnect attempts (full jitter) [default: 5]",
    )
    add_reach_flags(
        listen,
        timeout_s=30,
        waits="when no hub has answered at start (once subscribed, it retries for as long as "
        "it runs)",
    )
    token = commands.add_parser(
        "token",
        help="mint a JWT for development and scripts",
        description="Print a JWT signed with --private-key (RS256 or ES256, matching the hubs' "
        "HUB_JWT_PUBLIC_KEY) or --secret (HS256), else with the hubs' HUB_JWT_SECRET: a flag "
        "wins over the environment; both flags at once, or a key that does not load, exit 2. "
        "Globs may be repeated or comma-separated.",
    )
    token.add_argument("--sub", help="who the client is")
    token.add_argument("--channels", action="append", metavar="GLOBS", help="subscribe and publish")
    token.add_argument("--subscribe", action="append", metavar="GLOBS", help="subscribe only")
    token.add_argument("--publish", action="append", metavar="GLOBS", help="publish only")
    token.add_argument(
        "--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (0: no expiry) [default: 1h]"
    )
    token.add_argument("--secret", help="HS256 secret [default: HUB_JWT_SECRET]")
    token.add_argument(
        "--private-key",
        metavar="PEM",
        help="RSA or EC private key, a PEM file or PEM text; used even when HUB_JWT_SECRET is set",
    )
    token.add_argument("--config", metavar="FILE", help="the hubs' config file [env HUB_CONFIG]")
    check = commands.add_parser(
        "check",
        help="validate a configuration, print what hub serve would run with, and try its Redis",
        description="Read the configuration exactly as 'hub serve' does (flags, HUB_* "
        "environment, --config file), check it, and print every setting with its source; "
        "then connect to its broker and say what is there (version, role, cluster or "
        "sentinel topology, whether the history script loads, the round trip). Exit status "
        "2 when the configuration is invalid, 1 when the broker cannot be reached or used.",
    )
    check.add_argument(
        "--offline",
        action="store_true",
        help="check the configuration only: do not connect to the broker",
    )
    add_settings_flags(check)


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        opt.name: getattr(args, opt.name)
        for opt in OPTIONS
        if getattr(args, opt.name, None) is not None
    }
    if isinstance(overrides.get("proxy_headers"), list):
        overrides["proxy_headers"] = ",".join(overrides["proxy_headers"])
    return Settings.from_env(os.environ, **overrides)


def _worker_main(settings: Settings, index: int) -> None:
    """Entry point of a spawned worker process."""
    exit_on_signals()
    import multiprocessing

    from hub.cli.orphans import die_with_parent

    # A worker outlives no supervisor, even a SIGKILLed one, even one that died while this
    # worker was still starting.
    supervisor = multiprocessing.parent_process()
    die_with_parent(parent=supervisor.pid if supervisor is not None else None)
    from hub.app import run_worker
    from hub.cli.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format, worker=index)
    sys.exit(run_worker(settings, worker=index, reuse_port=True, supervised=True))


def serve(settings: Settings) -> int:
    """``hub serve``: check the settings and the ports, then run one worker here, or N under a
    supervisor. Every listener sets SO_REUSEPORT (the workers share the port); the ports are
    checked first, so another process on one is refused (hub.runtime.ports)."""
    from hub.cli.check import validate_runtime
    from hub.cli.logs import configure_logging
    from hub.runtime.ports import EXIT_CANNOT_LISTEN, CannotListen, claim_ports

    exit_on_signals()
    try:
        validate_runtime(settings)
    except ConfigError as exc:
        return refuse("serve", settings.relabel(exc))
    try:
        claim = claim_ports(settings)
    except CannotListen as exc:
        print(f"{PREFIX_SERVE} {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN

    with claim:
        if settings.num_workers == 1:
            from hub.app import run_worker

            configure_logging(settings.log_level, settings.log_format, worker=0)
            return run_worker(settings, reuse_port=True)
        from hub.cli.embedded_redis import RedisNotInstalled
        from hub.cli.supervisor import Supervisor

        configure_logging(settings.log_level, settings.log_format)
        try:
            return Supervisor(settings, _worker_main).run()
        except RedisNotInstalled as exc:
            print(f"{PREFIX_SERVE} {exc}", file=sys.stderr)
            return 2


#: How every message of ``hub serve`` that stops it before it serves begins.
PREFIX_SERVE = "hub serve:"


def refuse(command: str, exc: ConfigError) -> int:
    """Print why the configuration of ``hub COMMAND`` is refused, in one line; status 2.
    ``exc`` names the flag, variable or file key that set the value."""
    what = "invalid configuration:" if command == "check" else "bad setting"
    print(f"hub {command}: {what} {exc}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from hub.bench import missing_requirement

        missing = missing_requirement()
        if missing is not None:
            print(
                f"hub bench needs the 'bench' extra ({missing} is not installed): "
                f"pip install '{DISTRIBUTION}[bench]' (in a checkout: pip install -e '.[bench]')",
                file=sys.stderr,
            )
            return 2
        from hub.bench.cli import main as bench_main

        status: int = bench_main(argv[1:])
        return status
    args = build_parser().parse_args(argv)
    if args.command == "listen":
        from hub.cli.listen import listen_command

        return listen_command(args)
    try:
        settings = _settings_from_args(args)
    except ConfigError as exc:
        return refuse(args.command, exc)
    if args.command == "serve":
        if args.print_config:
            sys.stdout.write(config_as_toml(settings))
            return 0
        return serve(settings)
    if args.command == "publish":
        from hub.cli.publish import publish_command

        return publish_command(args, settings)
    if args.command == "token":
        from hub.cli.token import token_command

        return token_command(args, settings)
    if args.command == "check":
        from hub.cli.check import check_command

        return check_command(args, settings)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
