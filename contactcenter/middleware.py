"""The JSON endpoints' edge: every error under /api/, /widget/api/ and /console/api/ in the one error shape.

DRF's exception handler (contactcenter.api.exception_handler) and `contactcenter.jsonhttp.json_endpoint` shape
the errors their views raise. What they never see is answered here: a body Django refuses to read (too large,
too many fields, a malformed multipart body), a route or method no view takes (Django's 404/405), the CSRF
check, a crash (Django's 500 page), and text that cannot be stored in a form field or the query string (the
query string of pages too, answered there with a plain 400).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.views.csrf import csrf_failure as django_csrf_failure

from contactcenter.errors import ApplicationError
from contactcenter.textinput import UnstorableText, unstorable_path

JSON_PREFIXES = ("/api/", "/widget/api/", "/console/api/")

# The error code of each status when nothing more specific is known.
STATUS_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
}
STATUS_MESSAGES = {
    400: "The request could not be read.",
    403: "You are not allowed to do this.",
    404: "No such endpoint.",
    413: "The request body is too large.",
    500: "Something went wrong on the server; nothing you sent was at fault. Try again later.",
}
# Headers of the refused response that a client still needs once its body is replaced.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def is_json_path(path: str) -> bool:
    return path.startswith(JSON_PREFIXES)


def error_json(code: str, message: str, fields: dict[str, list[str]] | None = None, *, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": fields or {}}}, status=status)


def _body_error(exc: Exception) -> JsonResponse:
    if isinstance(exc, RequestDataTooBig):
        return error_json("too_large", STATUS_MESSAGES[413], status=413)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return error_json("too_many_fields", "The form has too many fields or files.", status=400)
    if isinstance(exc, MultiPartParserError):
        return error_json(
            "invalid", "The multipart/form-data body could not be read (is its boundary set?).", status=400
        )
    return error_json("invalid", "The request body could not be read.", status=400)


def _lists(data: Any) -> dict[str, list[Any]]:
    return {key: list(values) for key, values in data.lists()}


def ensure_storable_form(data: Any, files: Any = None) -> None:
    """UnstorableText for a form field (name or value) or an uploaded file's name holding NUL or a surrogate."""
    path = unstorable_path(_lists(data))
    if path is None and files is not None:
        path = unstorable_path({key: [f.name for f in items] for key, items in _lists(files).items()})
    if path is not None:
        raise UnstorableText(path.split("[", 1)[0])


class JsonErrorMiddleware:
    """For the JSON path prefixes: reads the body up front and answers every error response as JSON.

    Sits before CsrfViewMiddleware, so its `process_view` reads the body (within Django's limits) before
    anything else does, and its response pass sees the CSRF refusal and every error page below it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if is_json_path(request.path_info) and response.status_code >= 400 and not _is_json(response):
            return _as_json_error(response)
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        if not is_json_path(request.path_info):
            # Pages too: views read search boxes straight from the query string (the console's history), and a
            # NUL there would reach PostgreSQL. Their forms keep their own field errors (Django's CharField
            # refuses NUL), so only the query string is checked here.
            try:
                _check_query(request)
            except UnstorableText:
                return HttpResponseBadRequest(
                    "Bad request: the address holds a character that cannot be stored (NUL).", content_type="text/plain"
                )
            return None
        try:
            _check_query(request)
            if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
                _read_body(request)
        except ApplicationError as exc:
            return error_json(exc.code, exc.message, exc.fields, status=exc.status)
        except (SuspiciousOperation, MultiPartParserError, UnreadablePostError) as exc:
            if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
                request._mark_post_parse_error()  # type: ignore[attr-defined]
            return _body_error(exc)
        return None


def _check_query(request: HttpRequest) -> None:
    path = unstorable_path(_lists(request.GET))
    if path is not None:
        raise UnstorableText(path.split("[", 1)[0])


def _read_body(request: HttpRequest) -> None:
    """Django's limits, applied before any view: DATA_UPLOAD_MAX_MEMORY_SIZE, the field and file counts.

    A form body is parsed (files stream to disk, outside the memory limit); any other body is read into
    memory, so DRF's parsers and the widget's JSON reader get it from there.
    """
    if request.content_type in FORM_TYPES:
        if request.method == "POST":
            ensure_storable_form(request.POST, request.FILES)
        # PUT/PATCH forms are parsed by DRF, whose form parsers make the same check.
        elif request.content_type != "multipart/form-data":
            request.body  # noqa: B018 - reading it applies the size limit
        return
    request.body  # noqa: B018


def _is_json(response: HttpResponseBase) -> bool:
    return str(response.get("Content-Type", "")).split(";")[0].strip() == "application/json"


def _as_json_error(response: HttpResponseBase) -> HttpResponse:
    status = response.status_code
    code = STATUS_CODES.get(status, "server_error" if status >= 500 else "invalid")
    message = STATUS_MESSAGES.get(status) or (response.reason_phrase or "Error").rstrip(".") + "."
    if status == 405:
        message = f"Method not allowed here; use {response.get('Allow', 'another method')}."
    replaced = error_json(code, message, status=status)
    for header in KEPT_HEADERS:
        if header in response:
            replaced[header] = response[header]
    return replaced


def daphne_leaves_bodies_to_django() -> None:
    """Stops daphne's Twisted request from parsing form bodies itself (idempotent; nothing if daphne is absent).

    Twisted's `Request.requestReceived` parses every POST form body into `request.args`, which daphne never
    reads (it hands the raw body to the application), and answers a multipart body it cannot parse (no
    boundary) with an empty 400 of its own, before Django or this module see the request. Without that
    parse, Django reads the body once, within its limits, and the error is answered in the API's shape.
    """
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # pragma: no cover - daphne is a dependency; other servers need nothing
        return
    original = WebRequest.__init__
    if getattr(original, "leaves_bodies_to_django", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    __init__.leaves_bodies_to_django = True  # type: ignore[attr-defined]
    WebRequest.__init__ = __init__


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the JSON endpoints say what to send; pages keep Django's explanation."""
    if is_json_path(request.path_info):
        return error_json(
            "csrf_failed",
            "CSRF check failed: send the header X-CSRFToken with the value of the csrftoken cookie.",
            status=403,
        )
    return django_csrf_failure(request, reason=reason)
