"""The ``lab`` fixture: a fresh many-hosts lab per test, removed even when the test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.hosts import Lab, lab_or_skip


@pytest.fixture
def lab() -> Iterator[Lab]:
    with lab_or_skip() as built:
        yield built
