"""``hub token``: mint a JWT for development and scripts, from the hubs' own key."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import jwt

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
    """(key, algorithm): --secret or the hubs' HUB_JWT_SECRET (HS256), else a private key
    whose type picks RS256 or ES256, as the hubs' public key does."""
    secret = args.secret or settings.jwt_secret
    if secret:
        return secret, "HS256"
    if not args.private_key:
        hint = " (the hubs verify with HUB_JWT_PUBLIC_KEY)" if settings.jwt_public_key else ""
        raise ValueError(
            "no key to sign with: set --secret or HUB_JWT_SECRET, or --private-key FILE" + hint
        )
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = args.private_key
    if "-----BEGIN" not in pem:
        try:
            with open(pem, "rb") as file:
                pem = file.read().decode()
        except OSError as exc:
            raise ValueError(f"--private-key: cannot read {pem}: {exc}") from None
    try:
        key = load_pem_private_key(pem.encode(), password=None)
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
    print(jwt.encode(claims, key, algorithm=algorithm))
    return 0
