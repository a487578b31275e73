"""An autouse fixture that empties the cache before each test, in effect wherever it is imported (a conftest
for a whole directory, or one test module): rate-limit counters live in the cache, keyed by ids and windows
that repeat across tests (rolled-back sequences, fixed clocks). Not a plugin: on Redis the cache shares the
channel layer's database, which the live-server tests must keep."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    # Session-start limits are counted in the cache by widget id, and ids repeat across tests (rolled back).
    cache.clear()
