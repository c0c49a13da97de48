"""``hub token``: mint a JWT for development and scripts, from the hubs' own key."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import jwt

from hub.cli.output import say
from hub.core.config import Settings

__all__ = ["parse_duration", "token_command"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h`` or ``7d`` as seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"--ttl {text!r}: use a number with s, m, h or d, e.g. 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _signing_key(args: argparse.Namespace, settings: Settings) -> tuple[Any, str]:
    """(key, algorithm): a flag first, --secret (HS256) or --private-key (RS256 or ES256 by
    the key's type, as the hubs' public key expects), else the hubs' HUB_JWT_SECRET. Both
    flags at once, or a key that does not load, is refused (ValueError)."""
    if args.secret and args.private_key:
        raise ValueError(
            "--secret and --private-key: choose one (HS256 with a secret, or RS256/ES256 "
            "with a private key, as the hubs verify)"
        )
    if args.private_key:
        key, algorithm = _private_key(args.private_key)
        if settings.jwt_secret:
            print(
                f"hub token: signing with --private-key ({algorithm}); the hubs' JWT secret "
                "(HUB_JWT_SECRET), set too, is not used",
                file=sys.stderr,
            )
        return key, algorithm
    secret = args.secret or settings.jwt_secret
    if secret:
        return secret, "HS256"
    hint = " (the hubs verify with HUB_JWT_PUBLIC_KEY)" if settings.jwt_public_key else ""
    raise ValueError(
        "no key to sign with: set --secret or HUB_JWT_SECRET, or --private-key FILE" + hint
    )


def _private_key(pem: str) -> tuple[Any, str]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = pem.encode()
    if "-----BEGIN" not in pem:
        try:
            with open(pem, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise ValueError(f"--private-key: cannot read {pem}: {exc.strerror}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--private-key: not an unencrypted PEM private key: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key, "ES256"
    raise ValueError("--private-key: use an RSA (RS256) or EC (ES256) key")


def _globs(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def token_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        ttl_s = parse_duration(args.ttl)
        key, algorithm = _signing_key(args, settings)
    except ValueError as exc:
        print(f"hub token: {exc}", file=sys.stderr)
        return 2
    claims: dict[str, Any] = {}
    if args.sub:
        claims["sub"] = args.sub
    for name in ("channels", "subscribe", "publish"):
        globs = _globs(getattr(args, name))
        if globs:
            claims[name] = globs
    if not any(n in claims for n in ("channels", "subscribe", "publish")):
        print(
            "hub token: the token would grant nothing; add --channels, --subscribe or --publish",
            file=sys.stderr,
        )
        return 2
    if ttl_s > 0:
        claims["exp"] = int(time.time() + ttl_s)
    say(jwt.encode(claims, key, algorithm=algorithm))
    return 0
