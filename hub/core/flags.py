"""Every setting of ``hub serve``, declared once: its type, default, help, flag and group.
Pure: a table, read by ``hub.core.config.Settings`` (which inherits it, and adds the checks,
the environment and the file) and by everything that documents or prints the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from hub.core.namespaces import Namespace
from hub.core.sizes import MiB

__all__ = ["Flags", "Source"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from: ``kind`` is ``flag``, ``env``, ``file`` or
    ``default``; ``where`` is what an error names (``--redis``, ``HUB_REDIS_URL``,
    ``hub.toml: redis``, or for a default the flag)."""

    kind: str
    where: str

    def describe(self) -> str:
        """``flag --redis``, ``env HUB_REDIS_URL``, ``file hub.toml: redis`` or ``default``."""
        return "default" if self.kind == "default" else f"{self.kind} {self.where}"


def _opt(default: _T, help: str, *, flag: str | None = None, group: str = "server") -> _T:
    return field(default=default, metadata={"help": help, "flag": flag, "group": group})


@dataclass(frozen=True, kw_only=True)
class Flags:
    """The settings' table; ``Settings`` is this with its checks and sources."""

    # Listening
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
    port: int = _opt(8765, "port for WebSocket connections and the HTTP endpoints")
    workers: int = _opt(
        0,
        "worker processes sharing the port via SO_REUSEPORT (0: one per CPU); each holds "
        "at most ~19,000 sockets because of the per-process open-file limit",
    )
    drain_s: float = _opt(
        0.0,
        "on SIGTERM, seconds to go on serving with /readyz answering 503 before closing the "
        "connections with 1001, so that a load balancer's health check takes the hub out of "
        "rotation first (behind haproxy's shipped config: 5)",
    )
    reuse_port: bool = _opt(
        False,
        "share --port (and --api-port) with other hub processes, e.g. a blue/green switch; "
        "without it hub refuses to start on a port that another process holds",
    )
    # Broker
    redis_url: str | None = _opt(
        None,
        "Redis URL (redis://, rediss://, unix://, "
        "redis+sentinel://host:26379,host2:26379/mymaster, or "
        "redis+cluster://host:7000,host2:7000); unset: the memory broker with "
        "one worker, or an embedded redis-server that hub starts and owns with several",
        flag="--redis",
        group="broker",
    )
    channel_prefix: str = _opt(
        "hub:", "prefix of the Redis pub/sub channel of each hub channel", group="broker"
    )
    publish_buffer_messages: int = _opt(
        10_000,
        "messages held while Redis is unreachable, published in order after the reconnect; "
        "beyond it they are dropped and counted",
        group="broker",
    )
    publish_buffer_bytes: int = _opt(
        16 * MiB, "bytes held while Redis is unreachable (see above)", group="broker"
    )
    probe_interval_s: float = _opt(
        1.0, "how often each process sends a probe through its own pub/sub path", group="broker"
    )
    probe_timeout_s: float = _opt(
        3.0,
        "a probe that has not come back after this long marks the process deaf: /readyz "
        "turns 503 and it reconnects and resubscribes",
        group="broker",
    )
    unsubscribe_delay_s: float = _opt(
        2.0,
        "delay between a channel's last local client leaving and its Redis UNSUBSCRIBE",
        group="broker",
    )
    # History, recovery and presence (per namespace in --config; these apply elsewhere)
    history_size: int = _opt(
        0,
        "messages kept per channel for recovery (0: no history); channels matching a "
        "[[namespaces]] entry of --config take its value instead",
        group="history",
    )
    history_ttl_s: float = _opt(
        0.0,
        "how long a channel's history lives after its last publish (needed with --history-size)",
        group="history",
    )
    history_meta_ttl_s: float = _opt(
        30 * 24 * 3600.0,
        "how long a channel's epoch and top offset outlive its last publish, so that an idle "
        "channel keeps its epoch",
        group="history",
    )
    recovery_max_messages: int = _opt(
        1000,
        "most messages one recovery replays; a client that missed more gets recovered: false",
        group="history",
    )
    presence: bool = _opt(False, "keep who is subscribed to each channel", group="history")
    join_leave: bool = _opt(
        False,
        "send join and leave events to subscribers that ask (needs --presence)",
        group="history",
    )
    presence_ttl_s: float = _opt(
        60.0,
        "a client of a crashed process leaves the presence list within this long",
        group="history",
    )
    config: str | None = _opt(
        None,
        "a TOML file with any of these settings (keys: their names, e.g. redis_url, "
        "history_size; hub serve --print-config prints them all) and [[namespaces]] of "
        "per-channel options "
        "(order: flag, then environment, then file, then default)",
        group="server",
    )
    #: Per-channel options from the config file's [[namespaces]]; not a flag.
    namespaces: tuple[Namespace, ...] = field(default=(), metadata={"option": False})
    #: Setting name → where its value came from (``from_env`` fills it); not a flag.
    sources: Mapping[str, Source] = field(
        default_factory=dict, compare=False, repr=False, metadata={"option": False}
    )
    # Limits
    max_message_bytes: int = _opt(
        MiB, "largest frame a client may send; a larger one closes it with 1009", group="limits"
    )
    max_buffered_bytes: int = _opt(
        4 * MiB,
        "unsent bytes a client may have queued, pongs to its pings included, before it is "
        "closed with 4008 (slow consumer)",
        group="limits",
    )
    max_connections: int = _opt(
        0,
        "connections one worker holds, handshakes in flight included (0: no limit); beyond "
        "it handshakes get HTTP 503",
        group="limits",
    )
    max_subscriptions: int = _opt(
        1000, "channels one hub.v1 connection may subscribe to", group="limits"
    )
    publish_rate: float = _opt(
        0.0,
        "messages per second each connection may publish (0: unlimited); raw mode closes an "
        "offender with 1008, hub.v1 answers with a rate_limited error",
        group="limits",
    )
    publish_burst: int = _opt(
        0, "publishes allowed in a burst above the rate (0: the rate, at least 1)", group="limits"
    )
    subscribe_rate: float = _opt(
        100.0,
        "channels per second each hub.v1 connection may subscribe to, after a burst (0: "
        "unlimited); beyond it a subscribe is answered with a subscribe_rate_limited error, "
        "nothing is subscribed and the connection stays open",
        group="limits",
    )
    subscribe_burst: int = _opt(
        0,
        "channels a hub.v1 connection may subscribe to in a burst above the rate (0: twice "
        "--max-subscriptions)",
        group="limits",
    )
    # Access control
    jwt_secret: str | None = _opt(
        None, "HS256 secret: require a JWT at the handshake (unset: auth off)", group="auth"
    )
    jwt_public_key: str | None = _opt(
        None,
        "RS256/ES256 public key, as a PEM file path or PEM text: require a JWT at the handshake",
        group="auth",
    )
    jwt_jwks_url: str | None = _opt(
        None,
        "URL of a JSON Web Key Set (RS256/ES256 keys by kid): require a JWT at the handshake, "
        "verified with the key its kid names; an unknown kid refetches the set (at most once "
        "per 10 s), and a failed fetch keeps the keys already known",
        group="auth",
    )
    allowed_origins: str | None = _opt(
        None,
        "comma-separated Origin values browsers may connect from, e.g. https://app.example.com "
        "(unset: any); clients that send no Origin are not browsers and are accepted",
        group="auth",
    )
    tls_cert: str | None = _opt(
        None,
        "PEM certificate (chain) file: serve wss:// and https:// on --port, with no "
        "terminating proxy in front (needs --tls-key)",
        group="server",
    )
    tls_key: str | None = _opt(None, "PEM private key file of --tls-cert", group="server")
    admin_token: str | None = _opt(
        None,
        "bearer token the admin pages need on --port (the dashboard, /stats, /metrics; "
        "/healthz and /readyz stay open); unset on a non-loopback --host: they answer 403",
        group="auth",
    )
    # Backend hooks (docs/protocol.md, "Backend hooks")
    proxy_connect_url: str | None = _opt(
        None,
        "backend URL asked at each handshake that brings no valid JWT: it answers who the "
        "client is, its grants, its expiry and its server-side channels, or refuses",
        group="hooks",
    )
    proxy_subscribe_url: str | None = _opt(
        None,
        "backend URL asked before each subscribe to a channel whose namespace has "
        "proxy_subscribe = true",
        group="hooks",
    )
    proxy_publish_url: str | None = _opt(
        None,
        "backend URL asked before each publish to a channel whose namespace has "
        "proxy_publish = true; it may refuse it or replace its data",
        group="hooks",
    )
    proxy_rpc_url: str | None = _opt(
        None, "backend URL that hub.v1's rpc requests are forwarded to", group="hooks"
    )
    proxy_refresh_url: str | None = _opt(
        None,
        "backend URL asked to extend a connection whose connect-hook expire_at is near "
        "(refused or failed: closed with 4001 at the expiry)",
        group="hooks",
    )
    proxy_timeout_s: float = _opt(
        3.0,
        "how long one hook call may take; past it the call fails (a connect closes with 1013, "
        "a request gets an unavailable error)",
        group="hooks",
    )
    proxy_headers: str | None = _opt(
        None,
        "a handshake header to forward to the connect hook, e.g. Cookie or Authorization "
        "(repeat the flag; comma-separated in HUB_PROXY_HEADER and the config file)",
        flag="--proxy-header",
        group="hooks",
    )
    # HTTP API
    api_port: int = _opt(0, "port of the HTTP publish API (0: off)", group="api")
    api_host: str = _opt("127.0.0.1", "address of the HTTP publish API", group="api")
    api_key: str | None = _opt(
        None,
        "bearer key the HTTP API requires (required unless --api-host is a loopback address)",
        group="api",
    )
    sse_keepalive_s: float = _opt(
        15.0,
        "seconds between keepalive comments on an idle /sse stream, so proxies keep it open",
        group="api",
    )
    # WebSocket
    compression: bool = _opt(
        False, "offer permessage-deflate (costs CPU per connection per message)", group="ws"
    )
    ping_interval_s: float = _opt(
        20.0, "seconds between keepalive pings to each client (0 disables)", group="ws"
    )
    ping_timeout_s: float = _opt(20.0, "seconds to wait for a pong before closing", group="ws")
    # Logging
    log_level: str = _opt("info", "debug, info, warning or error", group="logging")
    log_format: str = _opt("text", "text, or json for structured logs", group="logging")
