"""The supervision page (`/supervision/`, supervisors and admins): a shell that static/supervision/supervision.js
fills from its websocket (agents/supervision_consumer.py); nothing is read here but who may see it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from contactcenter.models import Membership, Role
from contactcenter.security import content_security_policy


@login_required
@require_GET
def supervision(request: HttpRequest) -> HttpResponse:
    membership: Membership | None = getattr(request.user, "membership", None)
    if membership is None or not membership.has_role(Role.SUPERVISOR):
        return render(request, "supervision/forbidden.html", {"membership": membership}, status=403)
    boot = {"userId": request.user.pk, "loginUrl": f"{reverse('login')}?next={reverse('supervision')}"}
    response = render(request, "supervision/index.html", {"boot": boot, "section": "supervision"})
    response["Content-Security-Policy"] = content_security_policy(request, sockets=True)
    return response
