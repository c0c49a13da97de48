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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.core.addresses import is_loopback
from hub.core.config_file import namespaces_toml, parse_config, toml_value
from hub.core.errors import ConfigError
from hub.core.flags import Flags, Source
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.core.origins import normalize_origin
from hub.core.sizes import parse_bytes

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


@dataclass(frozen=True, kw_only=True)
class Settings(Flags):
    """Everything a hub process needs to know. Build it with ``from_env`` or the CLI."""

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
