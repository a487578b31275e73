"""Rate limits in the cache: a fixed window per scope and key, one Redis round trip per hit, rates read from
settings, and the client address they are counted by."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ImproperlyConfigured

from contactcenter.ratelimit import Rate, client_ip, rate_parse, ratelimit_hit
from tests.support.cache import fresh_rate_limits  # noqa: F401  (autouse: counts start from an empty cache)

pytestmark = pytest.mark.django_db


# --- a fixed window per scope and key, counted in the cache -------------------------------------------------


def test_a_fixed_window_counts_hits_per_key_and_restarts_with_the_next_window():
    rate = Rate(count=3, seconds=60)
    at = 60 * 16_667 + 20.0  # 20 s into a window (windows start at multiples of 60 s)
    assert [ratelimit_hit(scope="t", key="a", rate=rate, now=at + i) for i in range(3)] == [None, None, None]
    assert ratelimit_hit(scope="t", key="a", rate=rate, now=at + 10) == 30  # the window ends in 30 s
    assert ratelimit_hit(scope="t", key="b", rate=rate, now=at + 10) is None  # another key, another count
    assert ratelimit_hit(scope="u", key="a", rate=rate, now=at + 10) is None  # another scope too
    assert ratelimit_hit(scope="t", key="a", rate=rate, now=at + 40) is None  # the next window


@pytest.mark.redis
def test_on_redis_one_round_trip_counts_every_hit_of_concurrent_threads_and_the_key_expires():
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    backend = caches["default"]
    assert isinstance(backend, RedisCache)
    rate = Rate(count=50, seconds=60)
    at = 60 * 16_667 + 20.0
    start = threading.Barrier(8)
    verdicts = []

    def hit():
        start.wait(10)
        verdicts.extend(ratelimit_hit(scope="conc", key="k", rate=rate, now=at) for _ in range(10))

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # 80 hits, none lost: exactly the first 50 pass.
    assert verdicts.count(None) == 50 and len(verdicts) == 80
    key = backend.make_and_validate_key(f"ratelimit:conc:k:{int(at // 60)}")
    client = backend._cache.get_client(key, write=True)
    assert backend.get(f"ratelimit:conc:k:{int(at // 60)}") == 80  # the cache API reads the same count
    assert 0 < client.ttl(key) <= 65


def test_rates_are_read_from_settings_strings():
    assert rate_parse("10/min") == Rate(count=10, seconds=60)
    assert rate_parse(" 120 / minute ") == Rate(count=120, seconds=60)
    assert rate_parse("5/10s") == Rate(count=5, seconds=10)
    assert rate_parse("1000/day") == Rate(count=1000, seconds=86400)
    assert rate_parse("") is None  # off
    for bad in ("10", "ten/min", "10/fortnight", "-1/min", "10/0s"):
        with pytest.raises(ImproperlyConfigured, match="WIDGET_SESSION_RATE"):
            rate_parse(bad, setting="WIDGET_SESSION_RATE")


def test_the_client_address_is_remote_addr_unless_proxies_are_trusted(settings):
    meta = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7, 198.51.100.2"}
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(meta) == "10.0.0.5"  # a header anyone can type is not read
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(meta) == "198.51.100.2"  # what our one proxy appended
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(meta) == "203.0.113.7"  # what our outer proxy appended; 6.6.6.6 is the client's claim
    assert client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}) == "10.0.0.5"  # too short
    assert client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "junk, x"}) == "10.0.0.5"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.7:51234"}) == "203.0.113.7"
    # IPv6 counts by /64: a subscriber usually holds a whole /64 and could rotate through it.
    assert client_ip({"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}) == client_ip({"REMOTE_ADDR": "2001:db8:1:2::99"})
    assert client_ip({"REMOTE_ADDR": "2001:db8:1:2::1"}) == "2001:db8:1:2::/64"
    assert client_ip({"REMOTE_ADDR": "::ffff:203.0.113.7"}) == "203.0.113.7"
