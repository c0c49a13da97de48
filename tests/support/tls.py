"""TLS for the tests: a self-signed certificate made as an operator would (the openssl command
line), an HTTPS server on a free port in a thread, and a wait for a TLS hub to be ready."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.processes import HubProcess
from support.waits import t, wait_until

__all__ = ["https_server", "self_signed", "wait_tls_ready"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files in
    ``directory`` (``cert.pem`` and ``key.pem``)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=hub test", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=t(30),
    )  # fmt: skip
    return cert, key


@contextmanager
def https_server(
    handler: type[http.server.BaseHTTPRequestHandler], cert_key: tuple[Path, Path] | None
) -> Iterator[str]:
    """``handler`` served on a free loopback port in a thread, over TLS with ``cert_key``
    (None: plain HTTP); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if cert_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if cert_key is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_tls_ready(hub: HubProcess, cert: Path, timeout: float = 20) -> None:
    """Wait until a ``--tls-cert`` hub answers ``https://…/readyz`` with 200, trusting ``cert``."""
    context = ssl.create_default_context(cafile=str(cert))

    def ready() -> bool:
        try:
            url = f"https://127.0.0.1:{hub.port}/readyz"
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except OSError:
            assert hub.proc.poll() is None, hub.output()
            return False

    wait_until(ready, timeout, "the TLS hub to answer https://…/readyz")
