"""wss:// served directly (--tls-cert, --tls-key), with a self-signed certificate."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from support import HubProcess, recv_n, run_python, t
from support.tls import self_signed, wait_tls_ready
from websockets.asyncio.client import connect


async def test_wss_with_a_self_signed_certificate(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """Clients that trust the certificate talk wss:// and https://; a plain ws:// client
    does not get through."""
    cert, key = self_signed(tmp_path)
    hub = start_hub("--workers", "1", "--tls-cert", str(cert), "--tls-key", str(key), wait=False)
    trust = ssl.create_default_context(cafile=str(cert))
    wait_tls_ready(hub, cert, 15)
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
