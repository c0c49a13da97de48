"""``hub listen`` and ``hub publish`` when the hub is not there, or is there behind TLS: they
say that they connect and retry, and why each try failed (once per reason every 5 s), give up
after --timeout with the reason (exit 1), and trust a self-signed hub with --ca-file or
--insecure, for wss:// and https:// alike."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_support import hub
from support import ROOT, HubProcess, RedisServer, clean_env, free_port, t
from support.tls import https_server, self_signed, wait_tls_ready

from hub.client import Publisher


def listen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "listen", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        cwd=ROOT, env=clean_env(),
    )  # fmt: skip


def publish_until_it_exits(
    proc: subprocess.Popen[str], publish: Callable[[], object]
) -> tuple[str, str]:
    """Publish every 0.1 s until ``hub listen --count 1`` has its message and exits (before it
    subscribes, what it misses does not count); its stdout and stderr."""
    deadline = time.monotonic() + t(20)
    while proc.poll() is None and time.monotonic() < deadline:
        publish()
        time.sleep(0.1)
    return proc.communicate(timeout=t(10))


def test_listen_with_no_hub_says_so_and_gives_up_after_the_timeout() -> None:
    """Nothing listens on the port: stderr says it connects, why each try fails (once, not at
    every retry), and after --timeout it exits 1 with the reason."""
    url = f"ws://127.0.0.1:{free_port()}"
    started = time.monotonic()
    out = hub("listen", "news", "--url", url, "--timeout", "3", "--backoff-max-s", "0.2")
    took = time.monotonic() - started
    assert out.returncode == 1, out
    assert 3 <= took < t(15), took
    lines = out.stderr.splitlines()
    assert lines[0] == f"hub listen: connecting to {url}"
    refused = f"cannot connect to {url}: connection refused"
    # A dozen tries in 3 s; the reason is said once (again only after 5 s).
    assert lines.count(f"hub listen: {refused}; retrying") == 1, lines
    assert lines[-1] == f"hub listen: gave up after 3 s (--timeout): {refused}"
    assert out.stdout == ""


def test_listen_started_before_the_hub_subscribes_when_it_comes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The usual start-up order of a script: the listener first, the hub a moment later."""
    port = free_port()
    prefix = f"r{port}:"
    proc = listen(
        "news", "--url", f"ws://127.0.0.1:{port}", "--count", "1", "--backoff-max-s", "0.2"
    )
    publisher = Publisher(redis_server.url, channel_prefix=prefix)
    try:
        time.sleep(1)
        assert proc.poll() is None
        with HubProcess(
            "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
            port=port, log_dir=tmp_path,
        ).wait_ready():  # fmt: skip
            out, err = publish_until_it_exits(
                proc, lambda: publisher.publish("news", text="arrived")
            )
    finally:
        proc.kill()
        publisher.close()
    assert proc.returncode == 0, err
    assert out == "arrived\n"
    assert (
        "connection refused; retrying" in err
        and f"subscribed to news on ws://127.0.0.1:{port}" in err
    )


def test_publish_with_no_hub_gives_up_with_the_reason() -> None:
    """--url and --api: exit 1 with why; --url said it was retrying meanwhile."""
    url = f"ws://127.0.0.1:{free_port()}"
    out = hub("publish", "news", "hi", "--url", url, "--timeout", "2")
    assert out.returncode == 1, out
    assert f"hub publish: cannot connect to {url}: connection refused; retrying" in out.stderr
    assert out.stderr.rstrip().endswith(
        f"gave up after 2 s (--timeout): cannot connect to {url}: connection refused"
    )
    api = f"http://127.0.0.1:{free_port()}"
    out = hub("publish", "news", "hi", "--api", api)
    assert out.returncode == 1, out
    assert out.stderr.strip() == f"hub publish: cannot reach {api}: connection refused"


def test_a_handshake_refused_with_an_http_status_says_which(tmp_path: Path) -> None:
    """Something else on the port (a web server that answers 404): the status, at once."""
    with _https_server(tmp_path, tls=False) as base:
        url = base.replace("http://", "ws://")
        started = time.monotonic()
        out = hub("listen", "news", "--url", url, "--timeout", "10")
    assert out.returncode == 1, out
    assert time.monotonic() - started < t(8)  # no retry can fix a 404
    assert "refused the handshake (code 404)" in out.stderr.splitlines()[-1], out.stderr


def test_a_hub_that_answers_503_is_retried_and_said(tmp_path: Path) -> None:
    """A status a retry may fix (a hub at its --max-connections, a proxy with no backend):
    retried, said once, and the reason of giving up."""
    with _https_server(tmp_path, tls=False) as base:
        url = base.replace("http://", "ws://") + "/busy"
        out = hub("listen", "news", "--url", url, "--timeout", "2", "--backoff-max-s", "0.2")
    assert out.returncode == 1, out
    busy = f"{url} answered HTTP 503"
    assert out.stderr.splitlines().count(f"hub listen: {busy}; retrying") == 1, out.stderr
    assert out.stderr.splitlines()[-1] == f"hub listen: gave up after 2 s (--timeout): {busy}"


@pytest.fixture
def tls_hub(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> tuple[HubProcess, Path, str]:
    """A hub serving wss:// with a self-signed certificate (openssl), its certificate, and
    its channel prefix."""
    cert, key = self_signed(tmp_path)
    prefix = f"s{free_port()}:"
    hub_process = start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
        "--tls-cert", str(cert), "--tls-key", str(key), wait=False,
    )  # fmt: skip
    wait_tls_ready(hub_process, cert)
    return hub_process, cert, prefix


def test_a_self_signed_hub_is_refused_with_the_reason_then_trusted_with_ca_file(
    tls_hub: tuple[HubProcess, Path, str], redis_server: RedisServer
) -> None:
    hub_process, cert, prefix = tls_hub
    wss = f"wss://127.0.0.1:{hub_process.port}"
    out = hub("listen", "news", "--url", wss, "--timeout", "2")
    assert out.returncode == 1, out
    assert "TLS failure: self-signed certificate" in out.stderr.splitlines()[-1], out.stderr
    assert "--ca-file" in out.stderr
    plain = hub("listen", "news", "--url", f"ws://127.0.0.1:{hub_process.port}", "--timeout", "2")
    assert plain.returncode == 1 and "use wss://" in plain.stderr, plain

    publisher = Publisher(redis_server.url, channel_prefix=prefix)
    for trust in (["--ca-file", str(cert)], ["--insecure"]):
        proc = listen("news", "--url", wss, "--count", "1", *trust)
        try:
            got, err = publish_until_it_exits(
                proc, lambda: publisher.publish("news", text="over tls")
            )
        finally:
            proc.kill()
        assert proc.returncode == 0 and got == "over tls\n", (trust, got, err)
    publisher.close()
    sent = hub("publish", "news", "hi", "--url", wss, "--ca-file", str(cert))
    assert sent.returncode == 0 and sent.stdout == "published to news\n", sent
    both = hub("publish", "news", "hi", "--url", wss, "--ca-file", str(cert), "--insecure")
    assert both.returncode == 2 and "not allowed with" in both.stderr


class _Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"published":1,"channel":"news"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/busy"):
            self.send_error(503, "Service Unavailable")
        else:
            self.send_error(404, "no WebSocket here")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _https_server(tmp_path: Path, *, tls: bool = True) -> Iterator[str]:
    """An HTTP API stand-in (a TLS proxy's answer) on a free port: POST answers 200, GET 404."""
    with https_server(_Api, self_signed(tmp_path) if tls else None) as base:
        yield base


def test_publish_through_an_https_api(tmp_path: Path) -> None:
    """--api https://: the certificate is checked, trusted with --ca-file, or not checked
    with --insecure."""
    with _https_server(tmp_path) as base:
        cert = tmp_path / "cert.pem"
        refused = hub("publish", "news", "hi", "--api", base)
        trusted = hub("publish", "news", "hi", "--api", base, "--ca-file", str(cert))
        insecure = hub("publish", "news", "hi", "--api", base, "--insecure")
    assert refused.returncode == 1 and "TLS failure: self-signed certificate" in refused.stderr
    for out in (trusted, insecure):
        assert out.returncode == 0, out
        assert out.stdout == '{"published":1,"channel":"news"}\n'


def test_listen_into_a_reader_that_stops_exits_0_quietly(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """``hub listen news | head -1``: once the reader has gone, the next line ends it, with
    no BrokenPipeError traceback (here the reader's end is closed from the start)."""
    prefix = f"b{free_port()}:"
    hub_process = start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix
    )
    publisher = Publisher(redis_server.url, channel_prefix=prefix)
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "listen", "news", "--url", hub_process.url()],
        stdout=write, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT,
        env=clean_env(),
    )  # fmt: skip
    os.close(write)
    try:
        _, err = publish_until_it_exits(proc, lambda: publisher.publish("news", text="x"))
    finally:
        proc.kill()
        publisher.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
