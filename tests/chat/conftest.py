"""Every chat test starts with an empty cache: session starts are counted in it by widget id, and ids repeat
across tests (rolled back). The live chat fixtures (widget, queue, online, visitor, conversation …) are shared
with tests/queueing and live in tests/conftest.py."""

from tests.support.cache import fresh_rate_limits  # noqa: F401  (autouse: in effect for all of tests/chat)
