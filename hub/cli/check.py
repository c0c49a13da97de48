"""``hub check``: validate a configuration as ``hub serve`` reads it, print it, and (unless
``--offline``) visit its broker (``hub.cli.probe``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import urllib.parse
from collections.abc import Mapping
from typing import Any

from hub.brokers import check_broker_url
from hub.cli.output import counted, say
from hub.core.auth import Authenticator
from hub.core.config import OPTIONS, Settings, describe_default, read_config_file
from hub.core.errors import ConfigError
from hub.runtime.tls import server_tls_context

__all__ = ["check_command", "validate_runtime"]

#: Settings printed as "(set)": their values are credentials.
_SECRETS = frozenset({"jwt_secret", "api_key", "admin_token"})


def validate_runtime(settings: Settings) -> None:
    """What ``hub serve`` checks beyond Settings before it starts: the JWT key loads and the
    TLS files make a context, the Redis URL names a broker. Raise ConfigError."""
    check_broker_url(settings.redis_url)
    Authenticator.create(secret=settings.jwt_secret, public_key=settings.jwt_public_key)
    if settings.tls_cert and settings.tls_key:
        server_tls_context(settings.tls_cert, settings.tls_key)


def _shown(name: str, value: Any) -> str:
    if value is None:
        return describe_default(None)
    if name in _SECRETS:
        return "(set)"
    if name == "jwt_public_key" and "-----BEGIN" in str(value):
        return "(PEM text)"
    if name == "redis_url":
        url = urllib.parse.urlsplit(str(value))
        if url.password:
            netloc = url.netloc.replace(f":{url.password}@", ":***@")
            return urllib.parse.urlunsplit(url._replace(netloc=netloc))
    return str(value)


def _sources(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """Where each setting comes from: the flag, its HUB_* variable, the config file."""
    sources: dict[str, str] = {}
    path = getattr(args, "config", None) or environ.get("HUB_CONFIG")
    if path:
        for name in read_config_file(path)[0]:
            sources[name] = f"config file {path}"
    for opt in OPTIONS:
        if opt.env in environ:
            sources[opt.name] = f"env {opt.env}"
        if getattr(args, opt.name, None) is not None:
            sources[opt.name] = f"flag {opt.flag}"
    return sources


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        validate_runtime(settings)
        sources = _sources(args, os.environ)
    except ConfigError as exc:
        print(f"hub check: invalid configuration: {exc}", file=sys.stderr)
        return 2
    broker = (
        f"Redis at {_shown('redis_url', settings.redis_url)}"
        if settings.redis_url
        else "the memory broker (one worker)"
        if settings.num_workers == 1
        else "an embedded redis-server that hub starts"
    )
    auth = "off"
    if settings.jwt_secret:
        auth = "JWT, HS256"
    elif settings.jwt_public_key:
        auth = "JWT, public key (RS256/ES256)"
    width = max(len(opt.flag) for opt in OPTIONS)
    say(
        "configuration OK; hub serve would run with:",
        f"  {counted(settings.num_workers, 'worker')} on {settings.host}:{settings.port}, {broker}",
        f"  auth: {auth}",
        (
            f"  {opt.flag:<{width}}  {_shown(opt.name, getattr(settings, opt.name))}  "
            f"({sources.get(opt.name, 'default')})"
            for opt in OPTIONS
        ),
        (
            f"  namespace {ns.pattern!r}: "
            + ", ".join(
                f"{f.name}={getattr(ns.options, f.name)}" for f in dataclasses.fields(ns.options)
            )
            for ns in settings.namespaces
        ),
    )
    if args.offline:
        return 0
    from hub.cli.probe import BrokerProblem, probe_broker

    try:
        lines = probe_broker(settings)
    except BrokerProblem as exc:
        say("broker: UNUSABLE (see stderr)")
        print(f"hub check: {exc}", file=sys.stderr)
        return 1
    say(lines)
    return 0
