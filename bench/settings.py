"""Bench settings: the project's settings with the bare relay consumer mounted beside the real routes."""

import os

from contactcenter.settings import *  # noqa: F403

ASGI_APPLICATION = "bench.asgi.application"

if os.environ.get("BENCH_SEEDING") == "1":
    # The bench process creates its data through the services, which publish events nobody listens to yet.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The project's URLs plus `/bench/hook/`, the bare floor of the inbound-webhook bench (bench/relay_load.py).
ROOT_URLCONF = "bench.urls"
