"""``hub token``: JWTs the hubs accept, signed with their secret or a private key."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cli_support import hub
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
    pem, public = _key_files(tmp_path, key)
    token = mint(capsys, "--private-key", str(pem), "--subscribe", "news", "--ttl", "0")
    grant = Authenticator.create(secret=None, public_key=public).verify(token)  # type: ignore[union-attr]
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


def _key_files(
    tmp_path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
) -> tuple[Path, str]:
    """A private key file (a new EC key by default), and its public key as PEM text."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "signing.pem"
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
    return pem, public.decode()


def test_the_private_key_flag_wins_over_the_secret_in_the_environment(tmp_path: Path) -> None:
    """With HUB_JWT_SECRET set (a shell that serves HS256 hubs too), --private-key still signs
    (ES256 here): the token is one a hub with --jwt-public-key takes, and stderr says the
    secret was not used."""
    pem, public = _key_files(tmp_path)
    out = hub(
        "token", "--private-key", str(pem), "--channels", "news",
        env={"HUB_JWT_SECRET": "a-secret-of-at-least-32-bytes-long!"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    grant = Authenticator.create(secret=None, public_key=public).verify(token)  # type: ignore[union-attr]
    assert grant.can_subscribe("news")
    assert "HUB_JWT_SECRET" in out.stderr and "not used" in out.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--private-key", "/nonexistent/key.pem"], "cannot read /nonexistent/key.pem"),
        (["--private-key", "{cert}"], "not an unencrypted PEM private key"),
        (["--private-key", "{key}", "--secret", "s"], "choose one"),
    ],
    ids=["missing-file", "not-a-private-key", "both-flags"],
)
def test_a_key_that_cannot_sign_exits_2_even_with_a_secret_in_the_environment(
    tmp_path: Path, args: list[str], says: str
) -> None:
    """The environment's secret is no fallback for a --private-key that does not load: the
    user asked for that key. Both flags at once is refused too."""
    pem, public = _key_files(tmp_path)
    cert = tmp_path / "public.pem"
    cert.write_text(public)
    args = [a.format(key=pem, cert=cert) for a in args]
    out = hub(
        "token", *args, "--channels", "news",
        env={"HUB_JWT_SECRET": "a-secret-of-at-least-32-bytes-long!"},
    )  # fmt: skip
    assert out.returncode == 2, out
    assert out.stdout == "" and out.stderr.startswith("hub token: ") and says in out.stderr
    assert "Traceback" not in out.stderr
