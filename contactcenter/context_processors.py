"""Template context for the navigation: the signed-in user's membership and the sandbox link."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def membership(request: HttpRequest) -> dict[str, Any]:
    """The membership, and whether to link the sandbox outbox (SANDBOX_OUTBOX, members only)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"membership": None, "sandbox_outbox": False}
    member = getattr(user, "membership", None)
    return {"membership": member, "sandbox_outbox": bool(settings.SANDBOX_OUTBOX and member is not None)}
