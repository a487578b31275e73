"""Home redirect and the health endpoint."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from contactcenter.channel_layer import layer_ping
from contactcenter.models import Role

HEALTH_LAYER_TIMEOUT = 5.0  # seconds: an unreachable Redis answers 503, not a hung health check


@login_required
def home(request: HttpRequest) -> HttpResponse:
    membership = getattr(request.user, "membership", None)
    if membership is None:
        if request.user.is_superuser:
            return redirect("admin:index")
        # Signed in but in no team (removed, or made in Django's admin): nothing here is theirs.
        logout(request)
        messages.error(request, "Your account is not part of a team. Ask your administrator for an invite.")
        return redirect("login")
    if membership.role == Role.ADMIN:
        return redirect("settings-home")
    return redirect("console")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer answer; 503 naming what failed."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        layer = get_channel_layer()
        assert layer is not None
        # A ping, not new_channel(): on the PubSub layer each new channel is a Redis subscription that
        # nothing would ever release (one per health check, every 10 s, for the life of the process).
        async_to_sync(_layer_ping)(layer)
        checks["channel_layer"] = "ok"
    except Exception as exc:
        checks["channel_layer"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)


async def _layer_ping(layer: object) -> None:
    await asyncio.wait_for(layer_ping(layer), HEALTH_LAYER_TIMEOUT)
