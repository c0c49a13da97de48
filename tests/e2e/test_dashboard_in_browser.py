"""The dashboard: a plain GET of / serves the page, /stats its figures, and the page works in
a real headless browser against two hub instances sharing one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from support import HubProcess, RedisServer, http_get, stats, t
from support.browser import chromium
from websockets.asyncio.client import ClientConnection, connect

from hub import __version__


@pytest.fixture
async def two_hubs(tmp_path: Path, own_redis: RedisServer) -> AsyncIterator[list[HubProcess]]:
    args = ("--workers", "1", "--redis", own_redis.url)
    hubs = [HubProcess(*args, log_dir=tmp_path / "logs")]
    hubs.append(HubProcess(*args, log_dir=tmp_path / "logs"))
    try:
        for hub in hubs:
            hub.wait_ready(20)
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_plain_get_serves_the_page_and_stats(two_hubs: list[HubProcess]) -> None:
    """GET / is HTML (not an upgrade), its files are served, and /stats is JSON."""
    hub = two_hubs[0]
    status, headers, body = await http_get(hub.port, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert body.lstrip().lower().startswith(b"<!doctype html>")
    assert b'src="/static/dashboard.js"' in body
    for path, kind in (
        ("/static/dashboard.js", "text/javascript"),
        ("/static/dashboard.css", "text/css"),
    ):
        status, headers, body = await http_get(hub.port, path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
    doc = await stats(hub.port)
    assert doc["multiprocess"] is False
    assert doc["broker"].startswith("redis://127.0.0.1:")  # where to publish from a shell
    assert doc["totals"]["workers"] == 1 and doc["totals"]["workers_ready"] == 1
    assert doc["totals"]["connections"] == 0
    (worker,) = doc["workers"]
    assert worker["worker"] == "0" and worker["alive"] and worker["broker_ready"]
    for key in ("received", "delivered", "published", "channels", "subscriptions", "dropped"):
        assert worker[key] == 0 and doc["totals"][key] == 0


async def _open(browser: Browser, hub: HubProcess) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(t(15) * 1000)
    await page.goto(hub.base_url + "/")
    await expect(page.locator("#status")).to_contain_text("live")
    return page


async def test_two_browsers_exchange_messages_across_two_hubs(
    two_hubs: list[HubProcess], browser: Browser
) -> None:
    """Two pages on two hubs join one channel, exchange messages through the page's UI, and
    each page's figures follow."""
    timeout_ms = t(15) * 1000
    pages = [await _open(browser, hub) for hub in two_hubs]
    for page in pages:
        await expect(page.locator("#connections")).to_have_text("0", timeout=timeout_ms)
        await expect(page.locator("#received")).to_have_text("0", timeout=timeout_ms)
        await expect(page.locator("#workers tbody tr")).to_have_count(1)

    for page in pages:
        await page.fill("#channel", "dash.room-51e")
        await page.click("#join")
        await expect(page.locator("#ws-state")).to_have_text("joined dash.room-51e")

    one, two = pages
    await one.fill("#message", "hello from one")
    await one.click("#send")
    await expect(two.locator("#log")).to_contain_text("received: hello from one")
    await expect(one.locator("#log")).to_contain_text("received: hello from one")
    await two.fill("#message", "hi from two")
    await two.click("#send")
    await expect(one.locator("#log")).to_contain_text("received: hi from two")

    # Each hub holds one connection and received one message from its page; each delivered
    # both messages to its one subscriber.
    for page, hub in zip(pages, two_hubs, strict=True):
        await expect(page.locator("#connections")).to_have_text("1", timeout=timeout_ms)
        await expect(page.locator("#received")).to_have_text("1", timeout=timeout_ms)
        await expect(page.locator("#channels")).to_have_text("1", timeout=timeout_ms)
        row = page.locator('#workers tbody tr[data-worker="0"] td')
        await expect(row.nth(1)).to_have_text("ready")
        doc = await stats(hub.port)
        assert doc["totals"]["delivered"] == 2

    await one.click("#leave")
    await expect(one.locator("#ws-state")).to_have_text("not joined")
    await expect(one.locator("#connections")).to_have_text("0", timeout=timeout_ms)


async def test_the_operator_panels(two_hubs: list[HubProcess], browser: Browser) -> None:
    """The channel list with subscriber counts, Redis status, version and uptime, and the
    charts of the last minutes, all fed by /stats."""
    hub = two_hubs[0]
    timeout_ms = t(15) * 1000
    async with connect(hub.url("dash.panel")), connect(hub.url("dash.panel")):
        page = await _open(browser, hub)
        row = page.locator('#channel-list tr[data-channel="dash.panel"] td')
        await expect(row.nth(1)).to_have_text("2", timeout=timeout_ms)
        await expect(page.locator("#redis-connected")).to_contain_text("yes")
        await expect(page.locator("#redis-broker")).to_contain_text("redis://127.0.0.1:")
        await expect(page.locator("#redis-reconnects")).to_have_text("0")
        await expect(page.locator("#version")).to_have_text(f"v{__version__}")
        await expect(page.locator("#uptime")).to_contain_text("worker 0")
        await expect(page.locator("#redis-probe")).to_contain_text("ms", timeout=timeout_ms)
        for name in ("connections", "received", "delivered", "fanout"):
            await expect(page.locator(f"#chart-{name}")).to_be_visible()
        await page.wait_for_function("chartData.connections.length >= 3", timeout=timeout_ms)
        assert await page.evaluate("chartData.connections.slice(-1)[0]") == 2


async def test_the_page_fits_a_phone_screen(two_hubs: list[HubProcess], browser: Browser) -> None:
    """At 420 px wide nothing spills: wide tables scroll inside their own box."""
    context = await browser.new_context(viewport={"width": 420, "height": 900})
    page = await context.new_page()
    await page.goto(two_hubs[0].base_url + "/")
    await expect(page.locator("#status")).to_contain_text("live", timeout=t(15) * 1000)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 420


async def test_a_busy_channel_does_not_freeze_the_page(
    two_hubs: list[HubProcess], browser: Browser
) -> None:
    """At 500 msg/s the log stays bounded and the page answers; Pause stops the log and
    says afterwards how many messages it did not show."""
    hub = two_hubs[0]
    page = await _open(browser, hub)
    await page.fill("#channel", "dash.busy")
    await page.click("#join")
    await expect(page.locator("#ws-state")).to_have_text("joined dash.busy")
    # The page measures its own responsiveness: the longest gap between 50 ms ticks.
    await page.evaluate(
        "window.maxGap = 0; window.lastTick = performance.now();"
        "setInterval(() => { const now = performance.now();"
        " maxGap = Math.max(maxGap, now - lastTick); lastTick = now; }, 50);"
    )
    async with connect(hub.url("dash.busy")) as publisher:
        await _publish(publisher, 1500, rate=500)
        await expect(page.locator("#log")).to_contain_text("message 1499")
        assert await page.locator("#log li").count() <= 200
        assert await page.evaluate("maxGap") < 1000, "the page stalled"
        await page.click("#pause")
        await expect(page.locator("#pause")).to_have_text("Resume")
        await page.wait_for_timeout(300)
        shown = await page.locator("#log").inner_text()
        await _publish(publisher, 100, rate=500, first=1500)
        await page.wait_for_timeout(500)
        assert await page.locator("#log").inner_text() == shown
        await page.click("#pause")
        await expect(page.locator("#log")).to_contain_text("messages not shown while paused")


async def _publish(ws: ClientConnection, count: int, *, rate: float, first: int = 0) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        await ws.send(f"message {first + i}")
        delay = start + (i + 1) / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
