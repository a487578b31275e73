"""Bench URLs: the project's, plus `/bench/hook/`, the bare floor of the inbound-webhook bench (bench settings only)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from contactcenter.urls import urlpatterns as project_urlpatterns


@csrf_exempt
def bare_hook(request: HttpRequest) -> HttpResponse:
    """Reads the form like a webhook view and answers 200 with an empty TwiML response: nothing else."""
    request.POST  # noqa: B018 (the form is parsed, as the real view parses it)
    return HttpResponse('<?xml version="1.0" encoding="UTF-8"?><Response></Response>', content_type="text/xml")


urlpatterns = [path("bench/hook/", bare_hook), *project_urlpatterns]
