"""settings.py read in fresh interpreters under different environments: embedded defaults, services, refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "contactcenter" / "settings.py"
LONG_KEY = "k" * 50

# env_str("NAME"...), env_bool(...), os.environ.get("NAME"), os.environ["NAME"], getenv("NAME").
_READ_PATTERNS = (
    re.compile(r"""\benv_[a-z]+\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""os\.environ(?:\.get)?[(\[]\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
)
# Families read by prefix, e.g. `key.startswith("ANYMAIL_")`.
_PREFIX_PATTERN = re.compile(r"""startswith\(\s*["']([A-Z][A-Z0-9_]*_)["']""")


def settings_variables() -> set[str]:
    """Every environment variable settings.py reads by name."""
    source = SETTINGS_FILE.read_text()
    return {name for pattern in _READ_PATTERNS for name in pattern.findall(source)}


def settings_prefixes() -> set[str]:
    """Prefixes of variable families settings.py reads wholesale (ANYMAIL_*)."""
    return set(_PREFIX_PATTERN.findall(SETTINGS_FILE.read_text()))


def clean_env(**variables: str) -> dict[str, str]:
    """This process's environment without anything settings.py reads, plus `variables`."""
    names = settings_variables()
    prefixes = tuple(settings_prefixes())
    env = {k: v for k, v in os.environ.items() if k not in names and not (prefixes and k.startswith(prefixes))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(variables)
    return env


PROBE = """
import json
import contactcenter.settings as s
print(json.dumps({name: getattr(s, name) for name in dir(s) if name.isupper()}, default=str))
"""


def load_settings(**variables: str) -> dict[str, Any]:
    result = run_settings(**variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_settings(**variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean_env(**variables), capture_output=True, text=True, timeout=60
    )


def test_variables_are_found_in_settings():
    assert {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"} <= settings_variables()


def test_no_variables_gives_the_embedded_mode():
    s = load_settings()
    assert s["DEBUG"] is True
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert s["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert s["CELERY_TASK_ALWAYS_EAGER"] is True
    assert s["SWEEP_IN_PROCESS"] is True
    assert s["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


def test_production_without_secret_key_refuses_to_start():
    result = run_settings(DEBUG="0", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_production_with_a_short_secret_key_refuses_to_start():
    result = run_settings(DEBUG="0", SECRET_KEY="short", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_without_allowed_hosts_refuses_to_start():
    result = run_settings(DEBUG="0", SECRET_KEY=LONG_KEY)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_with_its_secrets_starts():
    s = load_settings(DEBUG="0", SECRET_KEY=LONG_KEY, ALLOWED_HOSTS="chat.example.com,example.com")
    assert s["DEBUG"] is False
    assert s["ALLOWED_HOSTS"] == ["chat.example.com", "example.com"]
    assert s["SESSION_COOKIE_SECURE"] is True


def test_a_malformed_boolean_is_refused_by_name():
    result = run_settings(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG" in result.stderr


def test_database_url_selects_postgresql_with_persistent_connections():
    s = load_settings(DATABASE_URL="postgres://sb:secret@db.example:5432/switchboard")
    database = s["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["NAME"], database["HOST"], database["PORT"]) == ("switchboard", "db.example", 5432)
    # CONN_MAX_AGE=0 opens a connection per websocket message: 3-5x slower (shared/CHANNEL-LAYER.md).
    assert database["CONN_MAX_AGE"] > 0


def test_redis_url_selects_the_redis_layer_cache_and_a_real_broker():
    url = "redis://cache.example:6379/0"
    s = load_settings(REDIS_URL=url)
    layer = s["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "contactcenter.channel_layer.PubSubChannelLayer"  # channels_redis's, batching
    (host,) = layer["CONFIG"]["hosts"]
    assert host == {"address": url, "max_connections": 2000, "socket_timeout": 30}
    assert s["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert s["CACHES"]["default"]["LOCATION"] == url
    assert s["CELERY_BROKER_URL"] == url
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["SWEEP_IN_PROCESS"] is False


def test_core_channel_layer_raises_capacity():
    s = load_settings(REDIS_URL="redis://cache.example:6379/0", CHANNEL_LAYER_BACKEND="core")
    layer = s["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"]["capacity"] == 10000
    assert layer["CONFIG"]["hosts"][0]["socket_timeout"] == 30
    assert layer["CONFIG"]["hosts"][0]["max_connections"] == 2000


def test_unknown_channel_layer_backend_is_refused():
    result = run_settings(REDIS_URL="redis://cache.example:6379/0", CHANNEL_LAYER_BACKEND="rabbit")
    assert result.returncode != 0
    assert "CHANNEL_LAYER_BACKEND" in result.stderr


def test_a_separate_broker_alone_turns_eager_off():
    s = load_settings(CELERY_BROKER_URL="redis://broker.example:6379/1")
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_site_url_defaults_to_the_address_make_run_serves_on():
    assert load_settings()["SITE_URL"] == "http://127.0.0.1:8000"
    assert load_settings(PORT="8791")["SITE_URL"] == "http://127.0.0.1:8791"
    assert load_settings(HOST="localhost", PORT="8791")["SITE_URL"] == "http://localhost:8791"
    # A bind-all address is not one a browser (or an e-mailed link) can open.
    assert load_settings(HOST="0.0.0.0", PORT="9000")["SITE_URL"] == "http://127.0.0.1:9000"
    assert load_settings(HOST="::1", PORT="9000")["SITE_URL"] == "http://[::1]:9000"


def test_site_url_when_set_wins_over_host_and_port():
    s = load_settings(SITE_URL="https://chat.example.com/", PORT="8791")
    assert s["SITE_URL"] == "https://chat.example.com"


def test_a_malformed_port_is_refused_by_name():
    result = run_settings(PORT="eighty")
    assert result.returncode != 0
    assert "PORT" in result.stderr


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-secret-" + "x" * 40,
    "SECRETS_KEYS": "Z6fZbJ0m3a8G0eQk6V1r6m2n0Kq3v1y5tV8b3w2x1yA=",
    "ALLOWED_HOSTS": "chat.example.com",
    "SITE_URL": "https://chat.example.com",
    "BEHIND_TLS_PROXY": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    # Without these two `check --deploy` warns (W005, W021): the deployer decides, for their whole domain.
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def test_deploy_check_passes_with_the_production_variables(tmp_path):
    env = clean_env(**PRODUCTION, SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_behind_a_tls_proxy_plain_http_is_redirected_except_the_health_check():
    s = load_settings(**PRODUCTION)
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_REDIRECT_EXEMPT"] == ["^healthz$"]
    assert s["SECURE_HSTS_SECONDS"] == 31536000
    assert s["SESSION_COOKIE_SECURE"] is True and s["CSRF_COOKIE_SECURE"] is True
    embedded = load_settings()
    assert embedded["SECURE_SSL_REDIRECT"] is False and embedded["SECURE_HSTS_SECONDS"] == 0
    assert load_settings(**PRODUCTION, SECURE_SSL_REDIRECT="0")["SECURE_SSL_REDIRECT"] is False
