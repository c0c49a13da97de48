"""The browser's ways in, in headless Chromium against real hub and redis-server processes:
/client.js and EventSource each keep a page receiving, with nothing lost or doubled, while
the hub instance it is connected to restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page
from support import HubProcess, RedisServer, async_wait_until, http_get, t
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
