"""The dashboard: a plain GET of / serves the page, /stats its figures, and the page works in
a real headless browser against two hub instances sharing one Redis."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from support import HubProcess, RedisServer, http_get, stats, t

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAS_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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
    assert HAS_CHROMIUM, "chromium is not installed (scripts/test.sh installs Debian's chromium)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=t(30) * 1000
        )
        try:
            yield browser
        finally:
            await browser.close()


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
