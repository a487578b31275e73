"""Fixed-window counters in Django's cache (Redis in production, so every daphne process shares them)."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

_PERIODS = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def rate_parse(text: str, *, setting: str = "rate") -> Rate | None:
    """`"10/min"` → Rate(10, 60); also `/s`, `/hour`, `/day` and multiples (`"5/10s"`). Empty: no limit."""
    if not text.strip():
        return None
    match = _RATE.match(text.lower())
    unit = _PERIODS.get(match.group(3)) if match else None
    seconds = unit * int(match.group(2) or 1) if match and unit else 0
    if match is None or not seconds:
        raise ImproperlyConfigured(f"{setting} must look like 10/min (per s, min, hour or day), not {text!r}")
    return Rate(count=int(match.group(1)), seconds=seconds)


def _window(scope: str, key: str, rate: Rate, now: float | None) -> tuple[str, int]:
    """The cache key of `key`'s current fixed window, and the seconds until that window ends."""
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    return f"ratelimit:{scope}:{key}:{window}", max(1, math.ceil((window + 1) * rate.seconds - now))


def ratelimit_hit(*, scope: str, key: str, rate: Rate, now: float | None = None) -> int | None:
    """Counts one hit of `key`; None while within `rate`, else the seconds until its window ends.

    A fixed window (the count restarts every `rate.seconds`) keeps it to one cache key and one atomic
    increment; the price is that a burst straddling a window boundary may reach twice the rate.
    """
    cache_key, wait = _window(scope, key, rate, now)
    # The key outlives its window by a little, so a late increment still finds it.
    count = _count_hit(cache_key, rate.seconds + 5)
    return None if count <= rate.count else wait


def ratelimit_peek(*, scope: str, key: str, rate: Rate, now: float | None = None) -> int | None:
    """Like `ratelimit_hit` without counting: None while `key` has hits left in this window, else the wait."""
    cache_key, wait = _window(scope, key, rate, now)
    return None if int(caches["default"].get(cache_key) or 0) < rate.count else wait


def ratelimit_clear(*, scope: str, key: str, rate: Rate, now: float | None = None) -> None:
    """Forgets the hits of `key` in this window (e.g. a right password after a typo)."""
    caches["default"].delete(_window(scope, key, rate, now)[0])


def _count_hit(cache_key: str, ttl: int) -> int:
    """The key's count after this hit; atomic across processes on Redis (hits at once are never lost)."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # One round trip: SET NX gives a new key its expiry, INCR counts. Django stores integers as plain
        # Redis integers and the key is the cache's own, so the cache API reads the same value. Every
        # message pays this, so it is not add() + incr() (three round trips).
        key = backend.make_and_validate_key(cache_key)
        pipe = _redis_client().pipeline(transaction=False)
        pipe.set(key, 0, ex=ttl, nx=True)
        pipe.incr(key)
        return int(pipe.execute()[1])
    if backend.add(cache_key, 1, timeout=ttl):
        return 1
    try:
        return int(backend.incr(cache_key))
    except ValueError:  # evicted between the two calls
        backend.add(cache_key, 1, timeout=ttl)
        return 1


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis_client() -> redis.Redis:
    """One thread-safe client per Redis URL for the process (the cache's API builds a new one per call)."""
    location = settings.CACHES["default"]["LOCATION"]
    url = re.split("[;,]", location)[0] if isinstance(location, str) else location[0]  # where the cache writes
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.setdefault(url, redis.Redis.from_url(url))
    return client


def client_ip(meta: Mapping[str, Any]) -> str:
    """The client address a request is counted under (IPv6 by its /64: one subscriber's usual share).

    REMOTE_ADDR, unless TRUSTED_PROXY_COUNT says that many proxies of ours stand in front of the server:
    each appends the address it got the request from to X-Forwarded-For, so the entry that many hops from
    the right was written by our outermost proxy and is the real client. Entries further left are whatever
    the client sent, which is why the header is never read when the setting is 0 (it would let a script
    pick a fresh address for every request).
    """
    address = str(meta.get("REMOTE_ADDR") or "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    return _address_key(address) or _address_key(str(meta.get("REMOTE_ADDR") or "")) or "unknown"


def _address_key(raw: str) -> str:
    raw = raw.strip()
    candidates = [raw]
    if raw.startswith("[") and "]" in raw:  # [2001:db8::1]:443
        candidates.append(raw[1 : raw.index("]")])
    elif raw.count(":") == 1:  # 203.0.113.7:51234
        candidates.append(raw.split(":")[0])
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)
    return ""


# --- sign-in: failed passwords, counted three ways -----------------------------------------------------
#
# Per (account, address) with a low limit: a guesser is stopped, while the same account still signs in
# from anywhere else, so nobody can lock a colleague out by typing wrong passwords at their email. Per
# address over all accounts: one address trying many accounts. Per account over all addresses, with a
# much higher limit: guessing spread over many addresses. Only failures count; a right password clears
# its (account, address) count. Each refusal says when to try again; a password reset always works.
# The per-account limit is the one a colleague could trip from a few machines: so it never applies to an
# address this account has signed in from before (remembered for SIGNIN_KNOWN_ADDRESS_DAYS), and the
# owner keeps signing in at their own desk while a guesser elsewhere is stopped.

SIGNIN_LIMITS = (
    ("signin-pair", "SIGNIN_FAILURE_RATE"),
    ("signin-address", "SIGNIN_FAILURE_RATE_ADDRESS"),
    ("signin-account", "SIGNIN_FAILURE_RATE_ACCOUNT"),
)


def _signin_keys(account: str, address: str) -> dict[str, str]:
    # Hashed: the cache never holds an email address, and any typed text makes a well-formed key.
    account_key = hashlib.sha256(account.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return {"signin-pair": f"{account_key}:{address}", "signin-address": address, "signin-account": account_key}


def _signin_rates() -> list[tuple[str, Rate]]:
    rates = []
    for scope, setting in SIGNIN_LIMITS:
        rate = rate_parse(getattr(settings, setting), setting=setting)
        if rate is not None:
            rates.append((scope, rate))
    return rates


def _known_address_key(keys: dict[str, str]) -> str:
    return f"signin-known:{keys['signin-pair']}"


def signin_wait(*, account: str, address: str, now: float | None = None) -> int | None:
    """Seconds before `account` may try a password again from `address`; None when it may now."""
    keys = _signin_keys(account, address)
    known = caches["default"].get(_known_address_key(keys)) is not None
    waits = [
        ratelimit_peek(scope=scope, key=keys[scope], rate=rate, now=now)
        for scope, rate in _signin_rates()
        if not (known and scope == "signin-account")
    ]
    return max((wait for wait in waits if wait is not None), default=None)


def signin_failed(*, account: str, address: str, now: float | None = None) -> None:
    keys = _signin_keys(account, address)
    for scope, rate in _signin_rates():
        ratelimit_hit(scope=scope, key=keys[scope], rate=rate, now=now)


def signin_succeeded(*, account: str, address: str, now: float | None = None) -> None:
    keys = _signin_keys(account, address)
    caches["default"].set(_known_address_key(keys), 1, timeout=settings.SIGNIN_KNOWN_ADDRESS_DAYS * 86400)
    for scope, rate in _signin_rates():
        if scope == "signin-pair":
            ratelimit_clear(scope=scope, key=keys[scope], rate=rate, now=now)
