"""wss:// served directly (--tls-cert, --tls-key), with a self-signed certificate."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import HubProcess, recv_n, run_python, t, wait_until
from websockets.asyncio.client import connect


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_wss_with_a_self_signed_certificate(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """Clients that trust the certificate talk wss:// and https://; a plain ws:// client
    does not get through."""
    cert, key = self_signed(tmp_path)
    hub = start_hub("--workers", "1", "--tls-cert", str(cert), "--tls-key", str(key), wait=False)
    trust = ssl.create_default_context(cafile=str(cert))

    def ready() -> bool:
        try:
            url = f"https://127.0.0.1:{hub.port}/readyz"
            with urllib.request.urlopen(url, timeout=2, context=trust) as response:
                return bool(response.status == 200)
        except OSError:
            assert hub.proc.poll() is None, hub.output()
            return False

    wait_until(ready, 15, "the hub to answer https://…/readyz")
    wss = f"wss://127.0.0.1:{hub.port}/secure"
    async with connect(wss, ssl=trust) as a, connect(wss, ssl=trust) as b:
        await a.send("over tls")
        assert await recv_n(b, 1) == ["over tls"]
    try:
        async with connect(f"ws://127.0.0.1:{hub.port}/secure", open_timeout=t(3)):
            raise AssertionError("a plain ws:// handshake got through a TLS port")
    except (OSError, TimeoutError, Exception) as exc:  # the TLS server sees garbage
        assert not isinstance(exc, AssertionError), exc
    assert "wss://" in hub.output()


def test_a_bad_certificate_stops_hub_serve_at_once(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    out = run_python("-m", "hub", "serve", "--tls-cert", str(key), "--tls-key", str(cert))
    assert out.returncode == 2 and "--tls-cert=" in out.stderr, out.stderr
    out = run_python("-m", "hub", "serve", "--tls-cert", str(cert))
    assert out.returncode == 2 and "--tls-key" in out.stderr, out.stderr
