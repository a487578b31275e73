"""Fixtures of the channel tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Twilio's and the ESPs' HTTP edge, mocked (requests only; nothing else is): the test registers answers
    and reads the exact requests."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
