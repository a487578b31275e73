"""One Content-Security-Policy builder for every page, and the middleware that gives it to any response without one.

Pages with needs of their own (the console and the widget open sockets; the widget is framed by its
customers' sites) build their policy here too, with arguments, so every page shares the same base: only
this server's scripts and styles (no inline code, no eval), no plugins, no <base>, not framed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"


def content_security_policy(
    request: HttpRequest,
    *,
    sockets: bool = False,
    frame_ancestors: Sequence[str] = ("'none'",),
    form_action: Sequence[str] = ("'self'",),
    inline: bool = False,
) -> str:
    """The policy of a page of this server.

    `sockets`: the page opens websockets to this host. `frame_ancestors`: who may frame it (default nobody).
    `form_action`: where its forms may post. `inline`: allows inline script and style; only Django's debug
    error pages (DEBUG=1) get it, never a page of ours.
    """
    connect = ["'self'"]
    if sockets:
        connect.append(f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}")
    code = "'self' 'unsafe-inline'" if inline else "'self'"
    directives = [
        "default-src 'self'",
        f"script-src {code}",
        f"style-src {code}",
        "img-src 'self' data: blob:",
        f"connect-src {' '.join(connect)}",
        "object-src 'none'",
        "base-uri 'none'",
        f"form-action {' '.join(form_action)}",
        f"frame-ancestors {' '.join(frame_ancestors)}",
    ]
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    """Sets the default policy on every response that has none (a view that set its own keeps it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if HEADER not in response:
            # Django's technical 404/500 pages (DEBUG only) are styled and scripted inline.
            debug_page = settings.DEBUG and response.status_code >= 400
            response[HEADER] = content_security_policy(request, inline=debug_page)
        return response
