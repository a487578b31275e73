"""Widget pages: the iframe page a visitor chats in, the hosted chat page that embeds it on this server (the page a
"continue on the web" link opens), and the demo host page."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from chat.models import Widget
from contactcenter.models import Tenant
from contactcenter.security import content_security_policy

DEMO_TENANT_SLUG = "demo"


def _widget_csp(request: HttpRequest, widget: Widget) -> str:
    """The iframe's policy: the common one, with sockets, no forms, embeddable where the admin says."""
    return content_security_policy(
        request, sockets=True, form_action=("'none'",), frame_ancestors=("'self'", *widget.allowed_origins)
    )


def _parent_origin(request: HttpRequest, widget: Widget) -> str:
    """The embedding page's origin as loader.js reports it, if it is one the widget may be embedded in.

    The widget only ever posts to this origin and only listens to it; an origin that is not allowed
    gets "" (the browser refuses to frame the page there anyway, through frame-ancestors).
    """
    claimed = request.GET.get("origin", "")
    own = f"{request.scheme}://{request.get_host()}"
    return claimed if claimed in {own, *widget.allowed_origins} else ""


@xframe_options_exempt  # frame-ancestors below is what restricts embedding, per widget
@require_GET
def widget_frame(request: HttpRequest, public_key: str) -> HttpResponse:
    # The public key is what identifies the tenant here: there is no signed-in user to scope by.
    widget = Widget.objects.filter(public_key=public_key).only("public_key", "title", "accent_color").first()
    if widget is None:
        raise Http404("No such widget.")
    boot = {
        "publicKey": widget.public_key,
        "parentOrigin": _parent_origin(request, widget),
        "title": widget.title,
        "accent": widget.accent_color,
    }
    response = render(request, "chat/widget.html", {"widget": widget, "boot": boot})
    response["Content-Security-Policy"] = _widget_csp(request, widget)
    response["Referrer-Policy"] = "same-origin"
    return response


@require_GET
def demo_host(request: HttpRequest) -> HttpResponse:
    """A pretend customer site ("Demo Co") embedding the demo tenant's first widget, and nothing else of it."""
    tenant = Tenant.objects.filter(slug=DEMO_TENANT_SLUG).first()
    widget = None
    if tenant is not None:
        widget = Widget.objects.for_tenant(tenant).order_by("pk").only("public_key").first()
    return render(
        request,
        "chat/demo_host.html",
        {
            "public_key": widget.public_key if widget else "",
            "loader_url": request.build_absolute_uri(static("widget/loader.js")),
        },
    )


@require_GET
def widget_hosted(request: HttpRequest, public_key: str) -> HttpResponse:
    """A page of this server with the widget on it, for customers who reach the web chat from a link an agent sent
    by SMS, WhatsApp or email (channels_switch.services.web_links): static/widget/hosted.js takes the sign-in code
    from the URL fragment and initialises the widget with it."""
    widget = Widget.objects.filter(public_key=public_key).select_related("tenant").first()
    if widget is None:
        raise Http404("No such widget.")
    return render(
        request,
        "chat/hosted.html",
        {
            "widget": widget,
            "company": widget.tenant.name,
            "loader_url": request.build_absolute_uri(static("widget/loader.js")),
        },
    )
