"""Headless Chromium (Debian's, driven by Playwright) for the browser tests.

The flags keep it off the network: without the background-networking ones it tries to reach
Google's hosts at every start, and this machine refuses those connections.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from support.waits import t

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A running headless Chromium, closed at exit."""
    assert Path(CHROMIUM).exists(), (
        "chromium is not installed (scripts/test.sh installs Debian's chromium)"
    )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=t(30) * 1000
        )
        try:
            yield browser
        finally:
            await browser.close()
