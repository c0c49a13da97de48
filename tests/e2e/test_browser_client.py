"""The browser's ways in, in headless Chromium against real hub and redis-server processes:
/client.js and EventSource each keep a page receiving, with nothing lost or doubled, while
the hub instance it is connected to restarts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.async_api import Browser, Page
from support import HubProcess, RedisServer, async_wait_until, free_port, http, http_get, t
from support.browser import chromium
from support.counting import count, publish_numbered

NUM = 300
RATE = 60.0


def history_args(redis_url: str) -> tuple[str, ...]:
    return (
        "--redis", redis_url, "--workers", "1", "--history-size", "1000",
        "--history-ttl-s", "600", "--unsubscribe-delay-s", "0.2",
    )  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    page = await browser.new_page()
    page.set_default_timeout(t(15) * 1000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    await page.close()
    assert not errors, errors


def restart(hub: HubProcess, tmp: Path, redis_url: str) -> HubProcess:
    """Stop ``hub`` (SIGTERM) and start a new instance on the same ports."""
    hub.stop()
    ports = ["--port", str(hub.port)]
    if hub.api_port:
        ports += ["--api-port", str(hub.api_port)]
    # The later flags win: the new process listens where the old one did.
    again = HubProcess(*history_args(redis_url), *ports, log_dir=tmp)
    again.port, again.api_port = hub.port, hub.api_port
    return again


async def received(page: Page) -> list[int]:
    numbers: list[int] = await page.evaluate("window.got")
    return numbers


async def run_across_restart(
    page: Page, a: HubProcess, b: HubProcess, tmp: Path, redis_url: str
) -> HubProcess:
    """Publish NUM numbered messages through ``b`` while ``a`` restarts; wait until the page
    has them all (or the time is up). Returns the new ``a``."""
    publisher = asyncio.create_task(publish_numbered(b.url(), "news", range(NUM), rate=RATE))
    await async_wait_until(lambda: _has_some(page), 20, "the first messages in the page")
    a = await asyncio.to_thread(restart, a, tmp, redis_url)
    await asyncio.to_thread(a.wait_ready, 30)
    await publisher

    async def has_all() -> bool:
        return len(set(await received(page))) >= NUM

    try:
        await async_wait_until(has_all, 30, "every message in the page")
    except AssertionError:
        pass  # counted below, where the numbers say what went missing
    return a


async def _has_some(page: Page) -> bool:
    return len(await received(page)) >= 20


async def test_client_js_is_public_and_importable(tmp_path: Path, own_redis: RedisServer) -> None:
    """/client.js is served to anyone (no admin token), as a module any origin may import."""
    args = (*history_args(own_redis.url), "--admin-token", "secret-admin")
    with HubProcess(*args, log_dir=tmp_path) as hub:
        hub.wait_ready()
        status, headers, body = await http_get(hub.port, "/client.js")
        assert status == 200, body
        assert headers["content-type"].startswith("text/javascript")
        assert headers["access-control-allow-origin"] == "*"
        assert b"export class HubClient" in body
        status, _, _ = await http_get(hub.port, "/")
        assert status == 401  # the dashboard stays behind the admin token


async def test_client_js_page_keeps_receiving_across_a_restart(
    page: Page, tmp_path: Path, own_redis: RedisServer
) -> None:
    """A page subscribed through /client.js on instance A gets every numbered message once,
    in order, while A restarts: it reconnects, resubscribes and recovers."""
    a = HubProcess(*history_args(own_redis.url), log_dir=tmp_path)
    b = HubProcess(*history_args(own_redis.url), log_dir=tmp_path)
    try:
        a.wait_ready()
        b.wait_ready()
        # A page of another origin (B's): the module is fetched with CORS.
        await page.goto(b.base_url + "/healthz")
        await page.evaluate(
            """async ([base, url]) => {
              const { HubClient } = await import(base + "/client.js");
              window.got = [];
              window.events = [];
              window.hub = new HubClient(url, { minDelayMs: 100, maxDelayMs: 500 });
              await new Promise((resolve) => {
                window.hub.subscribe("news", (value) => window.got.push(value.n), {
                  onEvent: (ev) => { window.events.push(ev); resolve(); },
                });
              });
            }""",
            [a.base_url, a.url()],
        )
        a = await run_across_restart(page, a, b, tmp_path, own_redis.url)
        counts = count(await received(page), range(NUM))
        events = await page.evaluate("window.events")
        assert counts.is_exact, f"{counts}; events {events}"
        assert not counts.lost and not counts.duplicated and not counts.reordered
        types = [e["type"] for e in events]
        assert types == ["subscribed", "subscribed"], events  # no gap, no "unrecovered"
        assert events[1]["recovered"] is True
    finally:
        a.stop()
        b.stop()


async def test_event_source_keeps_receiving_across_a_restart(
    page: Page, tmp_path: Path, own_redis: RedisServer
) -> None:
    """The browser's own EventSource on A's /sse resumes with Last-Event-ID after A
    restarts: 0 lost, 0 duplicated."""
    a = HubProcess(*history_args(own_redis.url), api=True, log_dir=tmp_path)
    b = HubProcess(*history_args(own_redis.url), log_dir=tmp_path)
    try:
        a.wait_ready()
        b.wait_ready()
        await page.goto(b.base_url + "/healthz")
        await page.evaluate(
            """async (url) => {
              window.got = [];
              window.events = [];
              const source = new EventSource(url);
              source.onmessage = (e) => window.got.push(JSON.parse(e.data).data.n);
              for (const name of ["subscribed", "gap"]) {
                source.addEventListener(name, (e) => window.events.push(JSON.parse(e.data)));
              }
              await new Promise((resolve) => source.addEventListener("subscribed", resolve));
            }""",
            a.api_url + "/sse/news",
        )
        a = await run_across_restart(page, a, b, tmp_path, own_redis.url)
        counts = count(await received(page), range(NUM))
        events = await page.evaluate("window.events")
        assert counts.is_exact, f"{counts}; events {events}"
        assert not counts.lost and not counts.duplicated and not counts.reordered
        assert [e["type"] for e in events] == ["subscribed", "subscribed"], events
        assert events[1]["recovered"] is True
    finally:
        a.stop()
        b.stop()


SECRET = "a-secret-that-is-long-enough-for-hs256!"


async def test_client_js_fails_over_and_renews_an_expired_token(
    page: Page, tmp_path: Path, own_redis: RedisServer
) -> None:
    """The first URL is dead, so the client fails over to the second; when its token
    expires (close code 4001) it calls getToken for a fresh one, reconnects and recovers:
    every numbered message arrives once."""
    args = (*history_args(own_redis.url), "--jwt-secret", SECRET)
    with HubProcess(*args, log_dir=tmp_path) as hub:
        hub.wait_ready()
        now = int(time.time())
        short = jwt.encode({"channels": "*", "exp": now + 4}, SECRET, algorithm="HS256")
        long = jwt.encode({"channels": "*", "exp": now + 600}, SECRET, algorithm="HS256")
        await page.goto(hub.base_url + "/healthz")
        await page.evaluate(
            """async ([urls, tokens]) => {
              const { HubClient } = await import("/client.js");
              window.got = [];
              window.closes = [];
              window.tokenCalls = 0;
              const hub = new HubClient(urls, {
                minDelayMs: 50,
                maxDelayMs: 200,
                getToken: async () => {
                  window.tokenCalls++;
                  return window.closes.includes(4001) ? tokens[1] : tokens[0];
                },
              });
              hub.on("disconnected", (ev) => window.closes.push(ev.code));
              await new Promise((resolve) => {
                hub.subscribe("news", (value) => window.got.push(value.n), { onEvent: resolve });
              });
            }""",
            [[f"ws://127.0.0.1:{free_port()}/", hub.url()], [short, long]],
        )
        publisher = asyncio.create_task(
            publish_numbered(hub.url() + f"?token={long}", "news", range(200), rate=40)
        )
        await publisher

        async def has_all() -> bool:
            return len(await received(page)) >= 200

        await async_wait_until(has_all, 20, "every message in the page")
        counts = count(await received(page), range(200))
        assert counts.is_exact, counts
        assert await page.evaluate("window.closes") == [4001]
        # Before the dead URL, before the live one, once in band before the exp (the same
        # short token: no refresh sent), and after the 4001.
        assert await page.evaluate("window.tokenCalls") == 4


async def test_client_js_queues_publishes_within_a_bound(
    page: Page, tmp_path: Path, own_redis: RedisServer
) -> None:
    """While no hub answers, publishes wait in a bounded queue (past it they are refused, or
    at once with queueWhileDisconnected false); once a hub is up they go out after the
    subscription, and come back to the page."""
    with HubProcess(*history_args(own_redis.url), log_dir=tmp_path) as source:
        source.wait_ready()
        port = free_port()
        await page.goto(source.base_url + "/healthz")
        refusals = await page.evaluate(
            """async (url) => {
              const { HubClient } = await import("/client.js");
              window.got = [];
              window.acks = [];
              const hub = new HubClient(url, { minDelayMs: 50, maxDelayMs: 300, maxQueued: 2 });
              hub.subscribe("q", (value) => window.got.push(value.n));
              for (const n of [0, 1]) hub.publish("q", { n }).then(() => window.acks.push(n));
              const refusals = [];
              await hub.publish("q", { n: 2 }).catch((err) => refusals.push(err.code));
              const strict = new HubClient(url, { queueWhileDisconnected: false });
              await strict.publish("q", { n: 3 }).catch((err) => refusals.push(err.code));
              strict.close();
              return refusals;
            }""",
            f"ws://127.0.0.1:{port}/",
        )
        assert refusals == ["queue_full", "disconnected"]
        late = HubProcess(*history_args(own_redis.url), "--port", str(port), log_dir=tmp_path)
        late.port = port
        with late:
            late.wait_ready()

            async def has_both() -> bool:
                return len(await received(page)) >= 2

            await async_wait_until(has_both, 20, "the queued messages to come back")
            assert await received(page) == [0, 1]
            assert sorted(await page.evaluate("window.acks")) == [0, 1]


async def test_client_js_reports_what_it_could_not_recover(
    page: Page, tmp_path: Path, own_redis: RedisServer
) -> None:
    """When the history no longer holds what a page missed, its subscription gets an
    "unrecovered" event (never a silent gap), and delivery goes on."""
    args = (*history_args(own_redis.url), "--history-size", "5")
    a = HubProcess(*args, log_dir=tmp_path)
    b = HubProcess(*args, log_dir=tmp_path)
    try:
        a.wait_ready()
        b.wait_ready()
        await page.goto(b.base_url + "/healthz")
        await page.evaluate(
            """async (url) => {
              const { HubClient } = await import("/client.js");
              window.got = [];
              window.events = [];
              const hub = new HubClient(url, { minDelayMs: 100, maxDelayMs: 300 });
              await new Promise((resolve) => {
                hub.subscribe("news", (value) => window.got.push(value.n), {
                  onEvent: (ev) => { window.events.push(ev); resolve(); },
                });
              });
            }""",
            a.url(),
        )
        a.stop()
        await publish_numbered(b.url(), "news", range(20), rate=200)
        port = a.port
        a = HubProcess(*args, "--port", str(port), log_dir=tmp_path)  # the later --port wins
        a.port = port
        a.wait_ready()

        async def unrecovered() -> bool:
            events = await page.evaluate("window.events")
            return any(e["type"] == "unrecovered" for e in events)

        await async_wait_until(unrecovered, 20, "an unrecovered event")
        events = await page.evaluate("window.events")
        assert [e["type"] for e in events] == ["subscribed", "subscribed", "unrecovered"], events
        assert events[2]["from"]["offset"] == 0 and events[2]["offset"] == 20
        await publish_numbered(b.url(), "news", range(20, 23), rate=200)

        async def live_again() -> bool:
            return (await received(page))[-1:] == [22]

        await async_wait_until(live_again, 20, "live messages after the loss")
        assert await received(page) == [20, 21, 22]
    finally:
        a.stop()
        b.stop()


async def test_client_js_delivers_a_server_side_subscription(
    page: Page, tmp_path: Path, own_redis: RedisServer
) -> None:
    """POST /api/subscribe reaches the page's connection: onServerSubscribe gets the
    subscription, its handler the channel's messages; /api/unsubscribe ends it."""
    key = "browser-api-key"
    args = (*history_args(own_redis.url), "--jwt-secret", SECRET, "--api-key", key)
    with HubProcess(*args, api=True, log_dir=tmp_path) as hub:
        hub.wait_ready()
        alice = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET, "HS256")
        await page.goto(hub.base_url + "/healthz")
        await page.evaluate(
            """async ([url, token]) => {
              const { HubClient } = await import("/client.js");
              window.got = [];
              window.events = [];
              const hub = new HubClient(url, {
                token,
                onServerSubscribe: (sub) => {
                  window.events.push(["server", sub.channel, sub.server, sub.position]);
                  return (value, msg) => window.got.push([msg.channel, value.n]);
                },
              });
              hub.on("unsubscribed", (ev) => window.events.push(["unsubscribed", ev.channel]));
              await new Promise((resolve) => hub.on("connected", resolve));
            }""",
            [hub.url(), alice],
        )
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def call(path: str, body: object) -> tuple[int, Any]:
            answer: tuple[int, Any] = http(
                "POST", hub.api_url + path, json.dumps(body).encode(), headers
            )
            return answer

        status, body = await asyncio.to_thread(
            call, "/api/subscribe", {"user": "alice", "channel": "inbox#alice"}
        )
        assert status == 200 and isinstance(body, dict) and body["count"] == 1, body
        for n in range(3):
            assert (await asyncio.to_thread(call, "/api/publish/inbox%23alice", {"n": n}))[0] == 200

        async def has_all() -> bool:
            return len(await page.evaluate("window.got")) >= 3

        await async_wait_until(has_all, 10, "the server-side channel's messages")
        assert await page.evaluate("window.got") == [["inbox#alice", n] for n in range(3)]
        events = await page.evaluate("window.events")
        assert events[0][:3] == ["server", "inbox#alice", True]
        assert events[0][3]["offset"] == 0  # a history channel: its position
        status, body = await asyncio.to_thread(
            call, "/api/unsubscribe", {"user": "alice", "channel": "inbox#alice"}
        )
        assert status == 200 and isinstance(body, dict) and body["count"] == 1

        async def unsubscribed() -> bool:
            return ["unsubscribed", "inbox#alice"] in await page.evaluate("window.events")

        await async_wait_until(unsubscribed, 10, "the unsubscribed event")
