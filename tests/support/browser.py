"""Headless Chromium for the browser tests, through Playwright (Debian's chromium)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from support.waits import t

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "HAS_CHROMIUM", "chromium"]

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


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A launched headless Chromium, closed on exit."""
    assert HAS_CHROMIUM, "chromium is not installed (scripts/test.sh installs Debian's chromium)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=t(30) * 1000
        )
        try:
            yield browser
        finally:
            await browser.close()
