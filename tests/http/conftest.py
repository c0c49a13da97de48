"""Fixtures of the tests of hub/http: its API and streams in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from api_in_process import StartApi, api_starter


@pytest.fixture
async def start_api() -> AsyncIterator[StartApi]:
    """Start a node and its PublishApi (``api_in_process.api_starter``); stopped at teardown."""
    async with api_starter() as start:
        yield start
