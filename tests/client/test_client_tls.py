"""hub.client.Client against a real wss:// hub with a self-signed certificate: untrusted, it
says why at WARNING (once per 5 s per reason) and keeps trying; ca_file=, SSL_CERT_FILE or
insecure=True let it in."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import HubProcess, t, wait_until
from support.tls import self_signed

from hub.client import Client
from hub.client import connection as client_connection


@pytest.fixture
def tls_hub(start_hub: Callable[..., HubProcess], tmp_path: Path) -> tuple[HubProcess, Path]:
    cert, key = self_signed(tmp_path)
    hub = start_hub("--workers", "1", "--tls-cert", str(cert), "--tls-key", str(key), wait=False)

    def listening() -> bool:
        assert hub.proc.poll() is None, hub.output()
        try:
            socket.create_connection(("127.0.0.1", hub.port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, 20, "the wss:// hub to listen")
    return hub, cert


async def round_trip(client: Client) -> None:
    async with asyncio.timeout(t(10)):
        sub = await client.subscribe("secure")
        await client.publish("secure", text="over tls")
        assert (await anext(sub)).text == "over tls"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hub.client.connection" and r.levelno == logging.WARNING
    ]


async def test_an_untrusted_certificate_is_logged_at_warning_rate_limited(
    tls_hub: tuple[HubProcess, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retrying every few ms, the client logs why once per interval (here 1 s, 5 s by
    default), and counts the failures it did not log."""
    hub, _ = tls_hub
    monkeypatch.setattr(client_connection, "CONNECT_WARNING_INTERVAL_S", 1.0)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    caplog.set_level(logging.WARNING, "hub.client")
    url = f"wss://127.0.0.1:{hub.port}"
    async with Client(url, backoff_initial_s=0.01, backoff_max_s=0.02) as client:
        await asyncio.sleep(2.5)  # ~2.5 intervals of failures
        assert not client.is_connected and client.num_connects == 0
    untrusted = [w for w in warnings_of(caplog) if "TLS certificate is not trusted" in w]
    assert 2 <= len(untrusted) <= 4, untrusted
    assert all(url in w and "ca_file=" in w and "SSL_CERT_FILE" in w for w in untrusted)
    assert "self-signed certificate" in untrusted[0]
    assert any("more failures like it since" in w for w in untrusted[1:]), untrusted


async def test_ca_file_trusts_the_hub(tls_hub: tuple[HubProcess, Path]) -> None:
    hub, cert = tls_hub
    async with Client(f"wss://127.0.0.1:{hub.port}", ca_file=cert, backoff_max_s=0.2) as client:
        await round_trip(client)


async def test_ssl_cert_file_trusts_the_hub(
    tls_hub: tuple[HubProcess, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ca_file=, the system store, which OpenSSL's SSL_CERT_FILE replaces."""
    hub, cert = tls_hub
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    async with Client(f"wss://localhost:{hub.port}", backoff_max_s=0.2) as client:
        await round_trip(client)


async def test_insecure_connects_without_verifying_and_says_so(
    tls_hub: tuple[HubProcess, Path], caplog: pytest.LogCaptureFixture
) -> None:
    hub, _ = tls_hub
    caplog.set_level(logging.WARNING, "hub.client")
    async with Client(f"wss://127.0.0.1:{hub.port}", insecure=True, backoff_max_s=0.2) as client:
        await round_trip(client)
    assert any("insecure=True" in w and "not verified" in w for w in warnings_of(caplog))


def test_bad_tls_arguments_are_refused_at_once(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ValueError, match="not both"):
        Client("wss://127.0.0.1:1", ca_file=cert, insecure=True)
    with pytest.raises(ValueError, match="cannot load the CA file"):
        Client("wss://127.0.0.1:1", ca_file=tmp_path / "missing.pem")
    Client("ws://127.0.0.1:1", ca_file=str(cert))  # a ws:// URL just does not use it


async def test_a_refused_connection_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    """Not only TLS: any reason a connect fails reaches the log, once per interval."""
    from support import free_port

    caplog.set_level(logging.WARNING, "hub.client")
    url = f"ws://127.0.0.1:{free_port()}"
    async with Client(url, backoff_initial_s=0.01, backoff_max_s=0.02):
        await asyncio.sleep(0.5)
    assert [w for w in warnings_of(caplog) if "connection refused" in w and url in w] == [
        f"hub.client: cannot connect to {url}: connection refused; trying again"
    ]


def test_publisher_reads_a_ca_from_a_rediss_url(tmp_path: Path) -> None:
    """Publisher takes Redis URLs: redis-py's ssl_ca_certs= in a rediss:// URL trusts a
    self-signed Redis, which the system's store alone refuses."""
    import redis
    from support import free_port, stop_process

    from hub.client import Publisher

    cert, key = self_signed(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        trusted = Publisher(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")

        def up() -> bool:
            try:
                return trusted.publish("news", text="hi").receivers == 0
            except redis.ConnectionError:
                return False

        wait_until(up, 20, "the TLS redis-server")
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            Publisher(f"rediss://127.0.0.1:{port}/0").publish("news", text="hi")
        trusted.close()
    finally:
        stop_process(server, 10)
