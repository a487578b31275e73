"""The JSON endpoints' edge, shared by the widget's and the console's HTTP APIs: one error shape, bodies parsed
and checked before any service sees them, and file downloads no browser will run (docs/protocol.md §6)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.files import File
from django.http import FileResponse, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache

from contactcenter.errors import ApplicationError, NotFound
from contactcenter.textinput import BadJson, ensure_storable, parse_json

MAX_JSON_BODY = 64 * 1024


def error_response(exc: ApplicationError) -> JsonResponse:
    error = exc.as_dict()
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        error["retry_after"] = retry_after
    response = JsonResponse({"error": error}, status=exc.status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def json_endpoint(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Maps ApplicationError to `{"error": {...}}` with its status; responses are never cached."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            return error_response(exc)

    return never_cache(wrapper)


def read_json(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object of storable text (contactcenter.textinput), or the error that says why not."""
    if len(request.body) > MAX_JSON_BODY:
        raise ApplicationError("too_large", "The request body is too large.", status=413)
    try:
        data = parse_json(request.body or b"{}")
    except BadJson as exc:
        raise ApplicationError("bad_json", str(exc)) from exc
    if not isinstance(data, dict):
        raise ApplicationError("invalid", "The body is a JSON object.")
    ensure_storable(data)
    return data


def download_response(file: File, *, filename: str, content_type: str) -> FileResponse:
    """The file as a download only, in the type given (one no browser runs), sandboxed, never shared."""
    try:
        handle = file.open("rb")
    except (FileNotFoundError, OSError) as exc:
        raise NotFound("attachment") from exc
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Cache-Control"] = "private, max-age=300"
    return response
