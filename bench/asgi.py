"""ASGI entry point of the bench: the project's application, plus `/bench/relay/` (bench settings only)."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from channels.routing import URLRouter
from django.urls import path

from bench.relay import BatchedRelayConsumer, FaultyRelayConsumer, RelayConsumer
from bench.whatif import apply_what_if
from contactcenter.asgi import application as project_application  # sets Django up

relay_application = URLRouter(
    [
        path("bench/relay/<int:pair>/<str:role>/", RelayConsumer.as_asgi()),
        path("bench/faulty/<int:pair>/<str:role>/", FaultyRelayConsumer.as_asgi()),
        path("bench/batched/<int:pair>/<str:role>/", BatchedRelayConsumer.as_asgi()),
    ]
)
apply_what_if(os.environ.get("BENCH_WHAT_IF", ""))


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # Outside the project's websocket stack on purpose: the relay is the no-auth, no-database baseline.
    if scope["type"] == "websocket" and scope["path"].startswith(
        ("/bench/relay/", "/bench/faulty/", "/bench/batched/")
    ):
        await relay_application(scope, receive, send)
    else:
        await project_application(scope, receive, send)
