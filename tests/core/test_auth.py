"""JWT verification and the grants of its claims: no event loop."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.core.auth import Authenticator, AuthError, Grant, may_subscribe, token_from_request
from hub.core.errors import ConfigError


def _pem(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_grant_patterns() -> None:
    """channels grants both rights; subscribe and publish one each; globs use fnmatch."""
    grant = Grant.from_claims({"channels": "room.*", "subscribe": ["news"], "publish": ["up:*"]})
    assert grant.can_subscribe("room.1") and grant.can_publish("room.1")
    assert grant.can_subscribe("news") and not grant.can_publish("news")
    assert grant.can_publish("up:x") and not grant.can_subscribe("up:x")
    assert not grant.can_subscribe("Room.1")


def test_no_patterns_grant_nothing() -> None:
    """A token without channel claims may neither subscribe nor publish."""
    grant = Grant.from_claims({"sub": "x"})
    assert not grant.can_subscribe("a") and not grant.can_publish("a")


@pytest.mark.parametrize("curve", ["es256", "rs256"])
def test_public_key_from_file(tmp_path: Path, curve: str) -> None:
    """ES256 and RS256 tokens verify against a PEM file; another key's tokens do not."""
    if curve == "es256":
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ec.generate_private_key(
            ec.SECP256R1()
        )
        other: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ec.generate_private_key(
            ec.SECP256R1()
        )
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "key.pem"
    path.write_text(_pem(key.public_key()))
    auth = Authenticator.create(secret=None, public_key=str(path))
    assert auth is not None
    alg = curve.upper()
    claims = {"sub": "a", "exp": int(time.time()) + 60, "channels": ["*"]}
    assert auth.verify(jwt.encode(claims, key, algorithm=alg)).sub == "a"
    with pytest.raises(AuthError):
        auth.verify(jwt.encode(claims, other, algorithm=alg))
    with pytest.raises(AuthError):
        auth.verify(jwt.encode(claims, "a-shared-secret-that-is-long-enough", algorithm="HS256"))


def test_expired_and_garbage_tokens() -> None:
    """Expired and malformed tokens raise AuthError with a reason."""
    auth = Authenticator.create(secret="s" * 32, public_key=None)
    assert auth is not None
    expired = jwt.encode({"exp": int(time.time()) - 5}, "s" * 32, algorithm="HS256")
    with pytest.raises(AuthError, match="expired"):
        auth.verify(expired)
    with pytest.raises(AuthError, match="invalid"):
        auth.verify("not.a.token")


def test_bad_public_key_is_a_config_error() -> None:
    """A public key that is neither PEM nor a readable file is refused at start-up."""
    with pytest.raises(ConfigError):
        Authenticator.create(secret=None, public_key="/nonexistent/key.pem")
    with pytest.raises(ConfigError):
        Authenticator.create(secret=None, public_key="-----BEGIN PUBLIC KEY-----\nxx\n")


def test_token_sources() -> None:
    """The header wins; else the token query parameter."""
    assert token_from_request("Bearer abc", "token=def") == "abc"
    assert token_from_request(None, "a=1&token=def") == "def"
    assert token_from_request("Basic xyz", "") is None


@pytest.mark.parametrize("exp", [1795538566, 1795538566.5, "1795538566"])
def test_exp_is_read_whatever_its_json_type(exp: object) -> None:
    """A numeric-string exp (PyJWT validates it) still sets the expiry timer."""
    grant = Grant.from_claims({"exp": exp, "channels": ["*"]})
    assert grant.exp is not None and int(grant.exp) == 1795538566


def test_a_non_numeric_exp_gives_no_timer() -> None:
    """An exp that is no number sets no expiry timer."""
    assert Grant.from_claims({"exp": "soon", "channels": ["*"]}).exp is None


def test_a_personal_channel_is_its_users_alone_whatever_the_grant() -> None:
    """``name#user``: its user needs no grant; nobody else gets it, not even with
    ``channels: ["*"]``; anonymous connections never, auth on or off."""
    everything = Grant.from_claims({"sub": "bob", "channels": ["*"]})
    nothing = Grant.from_claims({"sub": "alice"})
    assert may_subscribe(nothing, "alice", "notifications#alice")
    assert not may_subscribe(everything, "bob", "notifications#alice")
    assert not may_subscribe(None, None, "notifications#alice")  # auth off, anonymous
    assert may_subscribe(None, "alice", "notifications#alice")  # a connect hook's user
    assert not may_subscribe(nothing, "alice", "notifications#alicex")
    # Other channels: the grant, as before (auth off: everything).
    assert may_subscribe(everything, "bob", "news")
    assert not may_subscribe(nothing, "alice", "news")
    assert may_subscribe(None, None, "news")
