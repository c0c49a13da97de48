"""Settings: one frozen dataclass, read from ``HUB_*`` environment variables and CLI flags.

Each field's metadata names its flag, its environment variable and its help text, so the CLI,
the environment, the config file's keys and the README are generated from one table and cannot
drift apart. Precedence: flag > environment variable > config file > default.

``Settings.sources`` says where each value came from, so that an error names what the user
wrote (``--config``, ``HUB_CONFIG``, or the file and its key), never a variable they did not
set.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hub.core.addresses import is_loopback
from hub.core.config_file import namespaces_toml, parse_config, toml_value
from hub.core.errors import ConfigError
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.core.origins import normalize_origin
from hub.core.sizes import MiB, parse_bytes

__all__ = [
    "OPTIONS",
    "Option",
    "Settings",
    "Source",
    "config_as_toml",
    "describe_default",
    "is_loopback",
    "parse_bytes",
    "parse_value",
    "read_config_file",
]

#: Where prometheus-client's multiprocess mode keeps each worker's values; the supervisor sets
#: it for its workers, and any worker then answers /metrics for all of them.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


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
class Settings:
    """Everything a hub process needs to know. Build it with ``from_env`` or the CLI."""

    # Listening
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
    port: int = _opt(8765, "port for WebSocket connections and the HTTP endpoints")
    workers: int = _opt(
        0,
        "worker processes sharing the port via SO_REUSEPORT (0: one per CPU); each holds "
        "at most ~19,000 sockets because of the per-process open-file limit",
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

    def __post_init__(self) -> None:
        # Every error names the setting as the user gave it (self.where), and any other
        # setting it depends on the same way.
        where = self.where
        for opt in OPTIONS:
            value = getattr(self, opt.name)
            if opt.type in (int, float) and not isinstance(value, bool):
                if value < 0:
                    raise ConfigError(where(opt.name), value, "must not be negative")
        if not 1 <= self.port <= 65535 and self.port != 0:
            raise ConfigError(where("port"), self.port, "must be between 1 and 65535")
        if self.max_message_bytes < 1:
            raise ConfigError(where("max_message_bytes"), self.max_message_bytes, "must be >= 1")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                where("log_level"), self.log_level, "use debug, info, warning or error"
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(where("log_format"), self.log_format, "use text or json")
        if self.probe_timeout_s <= self.probe_interval_s:
            raise ConfigError(
                where("probe_timeout_s"),
                self.probe_timeout_s,
                f"must exceed {where('probe_interval_s')} ({self.probe_interval_s})",
            )

        problem = self.default_channel_options.problem()
        if problem is not None:
            key, value, reason = problem
            raise ConfigError(where(key), value, reason)
        if self.presence_ttl_s < 1:
            raise ConfigError(where("presence_ttl_s"), self.presence_ttl_s, "must be >= 1")

        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            raise ConfigError(
                where(missing), None, f"TLS needs both --tls-cert and --tls-key ({where(given)})"
            )

        if self.jwt_secret and self.jwt_public_key:
            raise ConfigError(
                where("jwt_public_key"),
                "(set)",
                f"set {where('jwt_secret')} or {where('jwt_public_key')}, not both",
            )
        if self.jwt_jwks_url and (self.jwt_secret or self.jwt_public_key):
            raise ConfigError(
                "HUB_JWT_JWKS_URL",
                self.jwt_jwks_url,
                "set one of HUB_JWT_SECRET, HUB_JWT_PUBLIC_KEY or HUB_JWT_JWKS_URL",
            )
        if self.proxy_timeout_s <= 0:
            raise ConfigError("HUB_PROXY_TIMEOUT_S", self.proxy_timeout_s, "must be > 0")
        rules = self.channel_rules()
        if rules.any_proxy_subscribe and not self.proxy_subscribe_url:
            raise ConfigError(
                "HUB_PROXY_SUBSCRIBE_URL",
                None,
                "a namespace has proxy_subscribe = true: set --proxy-subscribe-url",
            )
        if rules.any_proxy_publish and not self.proxy_publish_url:
            raise ConfigError(
                "HUB_PROXY_PUBLISH_URL",
                None,
                "a namespace has proxy_publish = true: set --proxy-publish-url",
            )
        if not 0 <= self.api_port <= 65535:
            raise ConfigError(where("api_port"), self.api_port, "must be between 0 and 65535")
        if self.api_port and self.api_port == self.port:
            raise ConfigError(where("api_port"), self.api_port, f"must differ from {where('port')}")
        if self.api_port and not self.api_key and not is_loopback(self.api_host):
            raise ConfigError(
                where("api_key"),
                None,
                f"the HTTP API listens on the non-loopback address {self.api_host}, so it needs "
                "a key: set --api-key, HUB_API_KEY or api_key in the config file",
            )

    def source(self, name: str) -> Source:
        """Where setting ``name`` came from (``default`` when nothing set it)."""
        return self.sources.get(name) or Source("default", _BY_NAME[name].flag)

    def where(self, name: str) -> str:
        """What an error names for setting ``name``: its flag, its variable or the file's
        key, whichever gave its value; the flag for a default."""
        return self.source(name).where

    def relabel(self, exc: ConfigError) -> ConfigError:
        """``exc`` naming what set its setting (see ``relabel``)."""
        return relabel(exc, self.sources)

    @property
    def origins(self) -> frozenset[str] | None:
        """The allowed Origin values, or None for any."""
        if not self.allowed_origins:
            return None
        normalized = {
            normalize_origin(o.strip().removesuffix("/"))
            for o in self.allowed_origins.split(",")
            if o.strip()
        }
        return frozenset(o for o in normalized if o is not None)

    @property
    def default_channel_options(self) -> ChannelOptions:
        """The options of channels that match no namespace: the global flags."""
        return ChannelOptions(
            history_size=self.history_size,
            history_ttl_s=self.history_ttl_s,
            history_meta_ttl_s=self.history_meta_ttl_s,
            presence=self.presence,
            join_leave=self.join_leave,
        )

    @property
    def forwarded_headers(self) -> tuple[str, ...]:
        """The handshake headers the connect hook gets (--proxy-header)."""
        names = (self.proxy_headers or "").split(",")
        return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))

    @property
    def hook_urls(self) -> dict[str, str]:
        """hook name → its backend URL, for the hooks that are configured."""
        urls = {
            "connect": self.proxy_connect_url,
            "subscribe": self.proxy_subscribe_url,
            "publish": self.proxy_publish_url,
            "rpc": self.proxy_rpc_url,
            "refresh": self.proxy_refresh_url,
        }
        return {hook: url for hook, url in urls.items() if url}

    def channel_rules(self) -> ChannelRules:
        return ChannelRules(self.namespaces, self.default_channel_options)

    @property
    def num_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``HUB_*`` variables in ``environ`` (default ``os.environ``).

        ``overrides`` win over the environment; the CLI passes the flags it was given.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, Source] = {}
        for name in overrides:
            if name in _BY_NAME:
                sources[name] = Source("flag", _BY_NAME[name].flag)
        if "config" not in overrides and env.get("HUB_CONFIG"):
            sources["config"] = Source("env", "HUB_CONFIG")
        try:
            path = overrides.get("config") or env.get("HUB_CONFIG")
            if path:
                written: dict[str, str] = {}
                values, values["namespaces"] = read_config_file(path, written=written)
                for name, key in written.items():
                    sources[name] = Source("file", f"{path}: {key}")
            for opt in OPTIONS:
                if opt.env in env:
                    sources[opt.name] = Source("env", opt.env)
                    values[opt.name] = parse_value(opt, env[opt.env])
            values.update(overrides)
            for name in overrides:  # a flag wins over the variable and the file
                if name in _BY_NAME:
                    sources[name] = Source("flag", _BY_NAME[name].flag)
            return cls(**values, sources=sources)
        except ConfigError as exc:
            raise relabel(exc, sources) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    default: object
    help: str
    flag: str
    env: str
    group: str


def _options() -> Iterator[Option]:
    hints = {"str": str, "int": int, "float": float, "bool": bool, "str | None": str}
    for f in dataclasses.fields(Settings):
        if f.metadata.get("option") is False:
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        yield Option(
            name=f.name,
            type=hints[str(f.type)],
            default=f.default,
            help=f.metadata["help"],
            flag=flag,
            env="HUB_" + flag[2:].upper().replace("-", "_")
            if f.name != "redis_url"
            else "HUB_REDIS_URL",
            group=f.metadata["group"],
        )


OPTIONS: tuple[Option, ...] = tuple(_options())
_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
_BY_ENV: dict[str, Option] = {o.env: o for o in OPTIONS}


def relabel(exc: ConfigError, sources: Mapping[str, Source]) -> ConfigError:
    """``exc``, raised with a setting's HUB_* variable as its key (as hub's modules do), with
    the key of what set it instead: ``--config``, ``HUB_CONFIG``, ``hub.toml: redis``, or the
    flag for a default. Any other ``exc`` as it is."""
    opt = _BY_ENV.get(exc.key)
    if opt is None:
        return exc
    source = sources.get(opt.name) or Source("default", opt.flag)
    if source.where == exc.key:
        return exc
    return ConfigError(source.where, exc.value, exc.reason)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def read_config_file(
    path: str, *, written: dict[str, str] | None = None
) -> tuple[dict[str, object], tuple[Namespace, ...]]:
    """(setting name → value, namespaces) from the TOML file at ``path`` (HUB_CONFIG);
    ``written`` receives each setting's key as the file spells it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError("HUB_CONFIG", path, f"cannot read the config file: {exc}") from None
    return parse_config(data, path, OPTIONS, written=written)


def describe_default(value: object) -> str:
    """A setting's default as `hub serve --help` and the README show it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def parse_value(opt: Option, text: str) -> str | int | float | bool:
    """Convert an environment variable's text to the option's type, or raise ConfigError."""
    try:
        if opt.type is bool:
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("use true or false")
        if opt.type is int:
            return parse_bytes(text) if opt.name.endswith("_bytes") else int(text)
        if opt.type is float:
            return float(text)
        return text
    except ValueError as exc:
        raise ConfigError(opt.env, text, f"expected {opt.type.__name__}: {exc}") from None


#: Settings whose values are credentials: ``config_as_toml`` does not print them.
SECRETS: frozenset[str] = frozenset({"jwt_secret", "api_key", "admin_token"})


def config_as_toml(settings: Settings) -> str:
    """``hub serve --print-config``: every setting as the config file's TOML, its value now,
    each with its help, its flag, variable and default, and where its value came from. The
    text is a config file that ``--config`` reads back; credentials (and a Redis URL with a
    password) stay commented out, and so does an unset setting (TOML has no null)."""
    out = [
        "# hub serve's configuration as a config file (hub serve --config FILE reads it back).",
        "# Order: a flag, then its HUB_* variable, then this file, then the default. Each key",
        "# may also be spelled as its flag (redis = ... for redis_url; dashes or underscores).",
        "",
    ]
    for opt in OPTIONS:
        value = getattr(settings, opt.name)
        out += [f"# {line}" for line in textwrap.wrap(opt.help, 94)]
        alias = opt.flag.removeprefix("--").replace("-", "_")
        key = opt.name if alias == opt.name else f"{opt.name} (or {alias})"
        out.append(f"# key {key}, flag {opt.flag}, env {opt.env}")
        out.append(
            f"# default {describe_default(opt.default)}; "
            f"now from {settings.source(opt.name).describe()}"
        )
        out.append(_toml_line(opt.name, value) + "\n")
    if settings.namespaces:
        out += [f"# [[namespaces]]: from {settings.config}", ""]
        out.append(namespaces_toml(settings.namespaces))
    return "\n".join(out).rstrip("\n") + "\n"


def _toml_line(name: str, value: object) -> str:
    """``name = value``, or a comment where the file cannot or should not hold the value."""
    if value is None:
        return f"# {name} = (unset)"
    if name == "config":
        return f"# {name} = {toml_value(value)}: a config file cannot name another"
    if name in SECRETS:
        return f"# {name} = (set, not printed)"
    password = urllib.parse.urlsplit(str(value)).password if name == "redis_url" else None
    if password:
        masked = str(value).replace(f":{password}@", ":***@")
        return f"# {name} = {toml_value(masked)} (its password is not printed)"
    return f"{name} = {toml_value(value)}"
