"""The HTTP API and JSON input under adversarial use, over real hub and redis-server
processes: numbers JSON cannot hold, malformed request lines, impossible positions, and
wrong API keys. Each is bounded in count and time, and checks the hub's log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from support import HubProcess, RedisServer, http, recv_n, t, v1_hub
from support.sse import open_sse
from websockets.asyncio.client import connect

SECRET = "a-secret-that-is-long-enough-for-hs256!"
API_KEY = "backend-key-that-must-never-be-logged"


@pytest.fixture
def api_hub(tmp_path: Path, redis_server: RedisServer) -> Iterator[HubProcess]:
    extra = ("--history-size", "100", "--history-ttl-s", "600", "--jwt-secret", SECRET)
    with v1_hub(tmp_path, redis_server.url, *extra, "--api-key", API_KEY, api=True) as hub:
        yield hub


def assert_clean_log(hub: HubProcess, *secrets: str) -> None:
    """No traceback, and none of ``secrets`` (plus the API key), anywhere in the log."""
    log = hub.output()
    assert "Traceback" not in log, log[-3000:]
    for secret in (API_KEY, *secrets):
        assert secret not in log, f"{secret[:12]}… is in the log"


def post(hub: HubProcess, path: str, body: bytes, key: str = API_KEY) -> tuple[int, object]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return http("POST", hub.api_url + path, body, headers)


async def exchange(
    port: int, head: bytes, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request on its own connection: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(head)
        async with asyncio.timeout(t(5)):
            data = await reader.read()
    finally:
        writer.close()
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def get_head(path: str, key: str | None = None, extra: str = "") -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}{extra}\r\n".encode()


NON_FINITE = [b"1e999", b"-1e400", b'{"a":[1,-1e400]}', b"123e4567"]


async def test_numbers_beyond_a_double_are_refused_and_numbers_kept_as_written(
    api_hub: HubProcess,
) -> None:
    """1e999 and its kind are refused with bad_field (hub.v1 and the API, batches too),
    never stored as Infinity; every number a publish carries arrives as it was written."""
    token = jwt.encode({"channels": "*"}, SECRET, algorithm="HS256")
    accepted: list[str] = []
    async with (
        connect(api_hub.url(f"nums?token={token}")) as raw,
        connect(api_hub.url(f"?token={token}"), subprotocols=["hub.v1"]) as v1,  # type: ignore[list-item]
    ):
        for n, value in enumerate(NON_FINITE):
            frame = b'{"op":"publish","channel":"nums","id":%d,"data":%b}' % (n, value)
            await v1.send(frame.decode())
            reply = json.loads(await asyncio.wait_for(v1.recv(), t(5)))
            if reply["type"] != "error":
                accepted.append(f"v1 {value!r}")
            else:
                assert reply["code"] == "bad_field" and "Infinity" in reply["message"], reply
            status, body = post(api_hub, "/api/publish/nums", value)
            if status != 400:
                accepted.append(f"api {value!r}: {status}")
            else:
                assert body["error"]["code"] == "bad_field", body  # type: ignore[index]
            batch = b'{"messages":[{"channel":"nums","data":%b}]}' % value
            status, body = post(api_hub, "/api/publish", batch)
            if status != 400:
                accepted.append(f"batch {value!r}: {status}")
        assert accepted == [], f"{len(accepted)} of {3 * len(NON_FINITE)} accepted: {accepted}"
        exact = b'{"a":1E2,"b":-0,"c":1.50,"d":0.1000000000000000055511151231257827,"e":1e-7}'
        await v1.send((b'{"op":"publish","channel":"nums","data":%b}' % exact).decode())
        assert json.loads(await asyncio.wait_for(v1.recv(), t(5)))["type"] == "ack"
        assert post(api_hub, "/api/publish/nums", exact.replace(b",", b", "))[0] == 200
        assert await recv_n(raw, 2) == [exact.decode()] * 2
    assert_clean_log(api_hub)


async def test_a_malformed_request_line_gets_400_without_a_traceback_or_the_token(
    api_hub: HubProcess,
) -> None:
    """500 request lines that aiohttp cannot parse: each gets 400, none writes a traceback;
    a token in such a line is neither logged nor echoed, nor is an API key anywhere."""
    secret = "eyJzZWNyZXQtdG9rZW4tdmFsdWU.never.logged"
    statuses: dict[int, int] = {}
    started = time.monotonic()
    for n in range(500):
        path = f"/sse/a?token={secret}&n=\xff" if n % 2 else "/\xff"
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1")
        status, _, body = await exchange(api_hub.api_port, head)
        statuses[status] = statuses.get(status, 0) + 1
        assert secret.encode() not in body
    assert time.monotonic() - started < t(30)
    for head in (
        get_head(f"/sse/a?token={secret}"),
        get_head("/api/channels", key=secret),
        get_head("/api/channels", key=API_KEY, extra="Content-Length: x\r\n"),
        get_head("/api/channels\x00", key=API_KEY),
    ):
        status, _, body = await exchange(api_hub.api_port, head)
        assert status in (400, 401) and secret.encode() not in body and API_KEY.encode() not in body
    await asyncio.sleep(0.2)  # the log lines of the last requests
    tracebacks = api_hub.output().count("Traceback")
    assert (statuses, tracebacks) == ({400: 500}, 0)
    assert_clean_log(api_hub, secret)


async def test_an_impossible_last_event_id_gets_400(api_hub: HubProcess) -> None:
    """An offset of 2**64 or more in Last-Event-ID (or ?last_event_id=) is a bad position,
    400 bad_field as /api/history answers it, not 503 with Redis's script error."""
    token = jwt.encode({"channels": "*"}, SECRET, algorithm="HS256")
    for offset in (2**64, 2**64 + 1, 10**20 - 1, 2**63):
        for how in ("header", "query"):
            path = f"/sse/hist?token={token}"
            headers = {"Last-Event-ID": f"e:{offset}"} if how == "header" else {}
            if how == "query":
                path += f"&last_event_id=e:{offset}"
            stream = await open_sse(api_hub.api_port, path, headers)
            stream.writer.close()
            assert stream.status == 400, (offset, how, stream.status)
            status, body = http("GET", f"{api_hub.api_url}/api/history/hist?since=e:{offset}", None,
                                {"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
            assert status == 400 and body["error"]["code"] == "bad_field", body  # type: ignore[index]
    assert "script" not in api_hub.output().lower()
    assert_clean_log(api_hub, token)


async def test_wrong_api_keys_are_throttled_and_logged_per_address(api_hub: HubProcess) -> None:
    """2000 wrong keys from one address: after a few 401s it gets 429 with Retry-After, a
    line or two in the log (with a count, without a key); another address with the right key
    is answered at once throughout."""
    port = api_hub.api_port
    statuses: dict[int, int] = {}
    retry_after: set[str] = set()
    other_s: list[float] = []
    for n in range(2000):
        status, headers, _ = await exchange(port, get_head("/api/channels", key=f"guess-{n}"))
        statuses[status] = statuses.get(status, 0) + 1
        if status == 429:
            retry_after.add(headers.get("retry-after", ""))
        if n % 200 == 0:
            began = time.monotonic()
            ok, _, _ = await exchange(port, get_head("/api/channels", key=API_KEY), "127.0.0.2")
            other_s.append(time.monotonic() - began)
            assert ok == 200
    assert statuses.get(401, 0) <= 20 and statuses.get(429, 0) >= 1980, statuses
    assert retry_after and all(v.isdigit() and 1 <= int(v) <= 10 for v in retry_after)
    assert max(other_s) < t(1)
    status, _, _ = await exchange(port, get_head("/api/channels", key=API_KEY))
    assert status == 429  # the blocked address is not served, even with the right key
    await asyncio.sleep(0.2)
    lines = [line for line in api_hub.output().splitlines() if "127.0.0.1" in line]
    refusals = [line for line in lines if "refused" in line]
    assert 1 <= len(refusals) <= 3, lines[-10:]
    assert any(char.isdigit() for char in refusals[-1].split("127.0.0.1")[-1])
    assert "guess-" not in api_hub.output()
    assert_clean_log(api_hub)
