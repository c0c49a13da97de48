"""JWT access control: verify a token once per handshake and keep what it grants.

Claims (docs/protocol.md, "Access control"):

* ``sub``: who the client is (logged, optional);
* ``exp``: expiry, seconds since the epoch (optional; when present the connection is closed
  with 4001 at that moment);
* ``channels``: glob patterns (``fnmatch``, case-sensitive) the token may subscribe AND
  publish to; ``subscribe`` and ``publish``: patterns for one right only. Each is a list of
  strings or one string. A token that names no pattern grants nothing.

A personal channel (``notifications#alice``, ``hub.core.channels``) is outside every grant:
``may_subscribe`` lets only its own user's connections subscribe to it, whatever the globs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jwt

from hub.core.channels import channel_user
from hub.core.errors import ConfigError, HubError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "AuthError",
    "Authenticator",
    "Grant",
    "KeyLookup",
    "load_public_key",
    "may_subscribe",
    "token_from_request",
    "token_kid",
]

#: kid → (key, algorithm) from a key set (``hub.hooks.jwks``), or None when it is unknown.
KeyLookup = Callable[[str | None], "tuple[object, str] | None"]


class AuthError(HubError):
    """A token is missing, invalid or expired (HTTP 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _matcher(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(parts)) if parts else None


def _patterns(claims: dict[str, object], name: str) -> list[str]:
    value = claims.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return value
    raise AuthError(f"claim {name!r} must be a glob pattern or a list of them")


class Grant:
    """What one verified token allows."""

    __slots__ = ("_publish", "_subscribe", "exp", "sub")

    def __init__(
        self,
        *,
        sub: str | None,
        exp: float | None,
        subscribe: Iterable[str],
        publish: Iterable[str],
    ) -> None:
        self.sub = sub
        self.exp = exp
        self._subscribe = _matcher(subscribe)
        self._publish = _matcher(publish)

    @classmethod
    def from_claims(cls, claims: dict[str, object]) -> Grant:
        both = _patterns(claims, "channels")
        sub = claims.get("sub")
        return cls(
            sub=str(sub) if sub is not None else None,
            exp=numeric_date(claims, "exp"),
            subscribe=both + _patterns(claims, "subscribe"),
            publish=both + _patterns(claims, "publish"),
        )

    def can_subscribe(self, channel: str) -> bool:
        return self._subscribe is not None and self._subscribe.match(channel) is not None

    def can_publish(self, channel: str) -> bool:
        return self._publish is not None and self._publish.match(channel) is not None


def may_subscribe(grant: Grant | None, user: str | None, channel: str) -> bool:
    """Whether a connection of ``user`` (None: anonymous) holding ``grant`` (None: auth is
    off) may subscribe to ``channel`` (or read its history or presence).

    A personal channel (``name#user``) is its user's alone, with no grant needed, and no
    other connection's whatever its grant (``channels: ["*"]`` included); anonymous
    connections never. Any other channel needs a grant that allows it, when auth is on.
    """
    owner = channel_user(channel)
    if owner is not None:
        return user is not None and user == owner
    return grant is None or grant.can_subscribe(channel)


def numeric_date(claims: dict[str, object], name: str) -> float | None:
    """A NumericDate claim (``exp``, ``nbf``) as PyJWT validated it: a number, or a string of
    one (PyJWT takes ``int(value)``), so the expiry timer uses the same instant it checked."""
    value = claims.get(name)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None  # a list or an object: JSON has no other kinds of value
    try:
        return float(value)
    except ValueError:
        return None


def load_public_key(value: str) -> str:
    """A PEM public key given as its text or as the path of a file holding it."""
    if "-----BEGIN" in value:
        return value
    try:
        return Path(value).read_text()
    except OSError as exc:
        raise ConfigError("HUB_JWT_PUBLIC_KEY", value, f"cannot read the PEM file: {exc}") from None


@dataclass(frozen=True)
class Authenticator:
    """Verifies tokens with an HS256 secret, or an RS256/ES256 public key."""

    #: The HS256 secret, or the loaded public key (None with a key set).
    key: str | RSAPublicKey | EllipticCurvePublicKey | None
    algorithms: tuple[str, ...]
    #: A key set's lookup by kid (--jwt-jwks-url); the I/O behind it is not core's.
    keys: KeyLookup | None = None
    #: Awaited with a token's kid before ``verify`` when the lookup does not know it: the
    #: key set's refetch (rate-limited by its owner).
    refresh_keys: Callable[[str | None], Awaitable[None]] | None = None

    @classmethod
    def with_key_set(
        cls, keys: KeyLookup, refresh: Callable[[str | None], Awaitable[None]]
    ) -> Authenticator:
        return cls(None, ("RS256", "ES256"), keys, refresh)

    async def prepare(self, token: str) -> None:
        """Before ``verify``: fetch the key set again if it does not know the token's kid."""
        if self.keys is None or self.refresh_keys is None:
            return
        kid = token_kid(token)
        if self.keys(kid) is None:
            await self.refresh_keys(kid)

    @classmethod
    def create(cls, *, secret: str | None, public_key: str | None) -> Authenticator | None:
        """None when neither is set: authentication is off."""
        if secret:
            return cls(secret, ("HS256",))
        if public_key:
            pem = load_public_key(public_key)
            try:
                from cryptography.hazmat.primitives.asymmetric import ec, rsa
                from cryptography.hazmat.primitives.serialization import load_pem_public_key

                loaded = load_pem_public_key(pem.encode())
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    "HUB_JWT_PUBLIC_KEY", public_key[:60], f"not a PEM public key: {exc}"
                ) from None
            # Only the algorithm of the key's own type: a token signed otherwise is refused
            # as such, and never reaches a verifier that cannot use the key.
            if isinstance(loaded, rsa.RSAPublicKey):
                return cls(loaded, ("RS256",))
            if isinstance(loaded, ec.EllipticCurvePublicKey):
                return cls(loaded, ("ES256",))
            raise ConfigError(
                "HUB_JWT_PUBLIC_KEY", public_key[:60], "use an RSA (RS256) or EC (ES256) key"
            )
        return None

    def verify(self, token: str) -> Grant:
        key: object = self.key
        algorithms = list(self.algorithms)
        if self.keys is not None:
            kid = token_kid(token)
            found = self.keys(kid)
            if found is None:
                raise AuthError(f"invalid token: no key {str(kid)[:40]!r} in the key set")
            key, algorithm = found
            algorithms = [algorithm]
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=algorithms,
                options={"verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; fetch a fresh one") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            # An odd header (an embedded jwk, a key of another type) is a bad token too.
            raise AuthError(f"invalid token: {type(exc).__name__}: {exc}") from None
        if not isinstance(claims, dict):
            raise AuthError("invalid token: the claims are not a JSON object")
        return Grant.from_claims(claims)


def token_kid(token: str) -> str | None:
    """The ``kid`` of a token's header, unverified (None when it has none or is malformed)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def token_from_request(authorization: str | None, query: str) -> str | None:
    """The bearer token of an ``Authorization`` header, else of a ``token`` query parameter."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if query:
        from urllib.parse import parse_qs

        values = parse_qs(query).get("token")
        if values:
            return values[0]
    return None
