"""``hub token``: JWTs the hubs accept, signed with their secret or a private key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.cli import main
from hub.cli.token import parse_duration
from hub.core.auth import Authenticator


@pytest.fixture(autouse=True)
def no_hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_JWT_SECRET", "HUB_JWT_PUBLIC_KEY", "HUB_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def mint(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0
    return capsys.readouterr().out.strip()


def test_a_secret_token_grants_what_it_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hubs' HUB_JWT_SECRET signs it; the hubs' verifier reads the same claims back."""
    monkeypatch.setenv("HUB_JWT_SECRET", "a-secret-of-at-least-32-bytes-long!")
    token = mint(
        capsys, "--sub", "alice", "--channels", "chat.*", "--publish", "news,alerts", "--ttl", "1h"
    )
    grant = Authenticator.create(
        secret="a-secret-of-at-least-32-bytes-long!", public_key=None
    ).verify(token)  # type: ignore[union-attr]
    assert grant.sub == "alice"
    assert grant.can_subscribe("chat.1") and grant.can_publish("chat.1")
    assert grant.can_publish("alerts") and not grant.can_subscribe("alerts")
    assert grant.exp is not None and abs(grant.exp - (time.time() + 3600)) < 60


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["rsa", "ec"],
)
def test_a_private_key_signs_for_the_hubs_public_key(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> None:
    """RS256 for an RSA key, ES256 for an EC key, as the hubs' --jwt-public-key expects."""
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = mint(capsys, "--private-key", str(pem), "--subscribe", "news", "--ttl", "0")
    grant = Authenticator.create(secret=None, public_key=public.decode()).verify(token)  # type: ignore[union-attr]
    assert grant.can_subscribe("news") and not grant.can_publish("news")
    assert grant.exp is None


def test_refusals_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    """No key, a token that grants nothing, or a bad --ttl: exit 2 with what to fix."""
    assert main(["token", "--channels", "x"]) == 2
    assert "no key to sign with" in capsys.readouterr().err
    assert main(["token", "--secret", "s", "--sub", "bob"]) == 2
    assert "grant nothing" in capsys.readouterr().err
    assert main(["token", "--secret", "s", "--channels", "x", "--ttl", "soon"]) == 2
    assert "--ttl" in capsys.readouterr().err


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "1h", "7d", "1.5h")] == [
        90, 90, 900, 3600, 7 * 86400, 5400,
    ]  # fmt: skip
