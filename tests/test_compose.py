"""docker-compose.yml, the Dockerfile and .env.example agree with each other and with settings.py (no Docker needed)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_settings_env import settings_prefixes, settings_variables

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING_APP_SERVICES = ("web", "worker", "beat")
INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
ENV_EXAMPLE_LINE = re.compile(r"^\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


def env_example_names() -> set[str]:
    return set(ENV_EXAMPLE_LINE.findall((ROOT / ".env.example").read_text()))


def app_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service["environment"]
    assert isinstance(environment, dict), "app services use the x-app-env mapping"
    return environment


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return value.split() if isinstance(value, str) else list(value)


def is_settings_variable(name: str) -> bool:
    return name in settings_variables() or name.startswith(tuple(settings_prefixes()) or ("\0",))


def test_every_service_exists(services):
    assert {"postgres", "redis", *APP_SERVICES} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")


def test_every_service_has_a_healthcheck_or_is_a_one_shot(services):
    for name, service in services.items():
        one_shot = service.get("restart") == "no"
        assert one_shot or service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_web_runs_two_daphne_replicas_checked_on_healthz(services):
    web = services["web"]
    assert web["deploy"]["replicas"] == 2
    argv = command(web)
    assert argv[0] == "daphne" and "contactcenter.asgi:application" in argv
    assert argv[argv.index("-b") + 1] == "0.0.0.0" and argv[argv.index("-p") + 1] == "8000"
    assert any("127.0.0.1:8000/healthz" in part for part in web["healthcheck"]["test"])


def test_worker_and_beat_run_celery_on_the_switchboard_queue(services):
    worker, beat = command(services["worker"]), command(services["beat"])
    assert worker[:4] == ["celery", "-A", "contactcenter", "worker"]
    assert worker[worker.index("-Q") + 1] == "switchboard"
    assert beat[:4] == ["celery", "-A", "contactcenter", "beat"]
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])


def test_migrate_runs_once_before_the_app(services):
    assert command(services["migrate"])[-3:] == ["manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    for name in LONG_RUNNING_APP_SERVICES:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_app_services_wait_for_healthy_postgres_and_redis(services):
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in LONG_RUNNING_APP_SERVICES:
        depends_on = services[name]["depends_on"]
        for backing in ("postgres", "redis"):
            assert depends_on[backing]["condition"] == "service_healthy", f"{name} -> {backing}"


def test_web_and_worker_share_the_media_volume_at_media_root(compose, services):
    media_root = app_env(services["web"])["MEDIA_ROOT"]
    mounts = {}
    for name in ("web", "worker"):
        volumes = [v for v in services[name]["volumes"] if v.split(":")[1] == media_root]
        assert volumes, f"{name} does not mount a volume at MEDIA_ROOT {media_root}"
        mounts[name] = volumes[0].split(":")[0]
    assert mounts["web"] == mounts["worker"]
    assert mounts["web"] in compose["volumes"], "a named volume, not a host path"
    assert app_env(services["worker"])["MEDIA_ROOT"] == media_root


def test_app_services_share_one_environment(services):
    environments = [app_env(services[name]) for name in APP_SERVICES]
    assert all(env == environments[0] for env in environments)


def test_compose_environment_uses_only_names_settings_reads(services):
    unknown = sorted(name for name in app_env(services["web"]) if not is_settings_variable(name))
    assert not unknown, f"compose sets variables settings.py never reads: {unknown}"


def test_compose_environment_is_production(services):
    env = app_env(services["web"])
    assert env["DEBUG"] == "0"
    # Secrets come from .env and compose refuses to start without them (`:?`), never inline.
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    for name in ("ALLOWED_HOSTS", "SITE_URL", "MEDIA_ROOT", "STATIC_ROOT"):
        assert env.get(name), name


def test_every_variable_compose_names_is_in_env_example(services):
    text = (ROOT / "docker-compose.yml").read_text()
    named = set(INTERPOLATED.findall(text)) | set(app_env(services["web"]))
    missing = sorted(named - env_example_names())
    assert not missing, f"add to .env.example: {missing}"


def test_every_variable_settings_reads_is_in_env_example():
    missing = sorted(settings_variables() - env_example_names())
    assert not missing, f"add to .env.example: {missing}"
    for prefix in settings_prefixes():
        assert any(name.startswith(prefix) for name in env_example_names()), f"document the {prefix}* family"
    assert {"HOST", "PORT"} <= env_example_names()


def test_dockerfile_builds_the_image_the_compose_file_runs(services):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    assert "pip install ." in dockerfile
    assert "collectstatic --noinput" in dockerfile
    # collectstatic writes where WhiteNoise reads at runtime.
    static_root = app_env(services["web"])["STATIC_ROOT"]
    assert f"STATIC_ROOT={static_root}" in dockerfile
    for name in APP_SERVICES:
        assert services[name].get("build") == "." or services[name].get("image") == services["web"]["image"]


def _compose_smoke_module():
    spec = importlib.util.spec_from_file_location("compose_smoke", ROOT / "scripts" / "compose_smoke.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_compose_smoke_interpolates_like_compose():
    smoke = _compose_smoke_module()
    variables = {"SET": "value", "EMPTY": ""}
    assert smoke.interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $SET $$HOSTNAME", variables) == (
        "value d  d value $HOSTNAME"
    )
    with pytest.raises(smoke.SmokeFailed, match="UNSET"):
        smoke.interpolate("${UNSET:?set it}", variables)


def test_daphne_never_trusts_client_typed_forwarded_addresses():
    """--proxy-headers makes daphne take the leftmost X-Forwarded-For entry, which a client can forge;
    the app reads the entry its own proxy wrote instead (TRUSTED_PROXY_COUNT)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = [service.get("command") or [] for service in compose["services"].values()]
    assert any("daphne" in command for command in commands)
    assert all("--proxy-headers" not in command for command in commands)
    cmd_lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD")]
    assert cmd_lines and all("--proxy-headers" not in line for line in cmd_lines)
    assert compose["x-app-env"]["TRUSTED_PROXY_COUNT"].startswith("${TRUSTED_PROXY_COUNT:-1}")
