"""The agent console's pages: the live console, a contact's page and the past-conversations search.

These views only read and render, but for the contact page's merge form; everything else the console changes
goes through the agent websocket and the JSON endpoints described in docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from agents.models import REMINDER_SECONDS_DEFAULT, AgentProfile, Presence, ReminderMode
from chat.selectors import (
    AgentActor,
    contact_conversation_list,
    contact_duplicates,
    contact_get,
    conversation_search,
)
from chat.services.contacts import contact_merge
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Membership, Role, user_display_name
from contactcenter.security import content_security_policy
from queueing.selectors import with_queue

CONVERSATIONS_PER_PAGE = 25
SELECTABLE_PRESENCE = [Presence.ONLINE, Presence.AWAY, Presence.OFFLINE]

View = Callable[..., HttpResponse]


def _console_csp(request: HttpRequest) -> str:
    return content_security_policy(request, sockets=True)


def console_page(view: View) -> View:
    """Signed-in members of any role only; the page gets a strict CSP (no inline script or style)."""

    @login_required
    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership: Membership | None = getattr(request.user, "membership", None)
        if membership is None:
            raise PermissionDenied("The console is for members of a tenant.")
        response = view(request, membership, *args, **kwargs)
        response["Content-Security-Policy"] = _console_csp(request)
        return response

    return wrapper


@console_page
def console(request: HttpRequest, membership: Membership) -> HttpResponse:
    profile = AgentProfile.objects.for_tenant(membership.tenant).filter(user=request.user).first()
    boot = {
        "userId": request.user.pk,
        "agentName": user_display_name(request.user),  # type: ignore[arg-type]
        "tenantName": membership.tenant.name,
        "presence": profile.presence if profile else Presence.OFFLINE,
        # How this agent wants to be reminded of chats they are not looking at (static/console/reminders.js).
        "reminders": {
            "mode": profile.reminder_mode if profile else ReminderMode.EVERY_MESSAGE,
            "seconds": profile.reminder_seconds if profile else REMINDER_SECONDS_DEFAULT,
        },
        "contactUrl": reverse("console-contact", args=[0]),
        "loginUrl": f"{reverse('login')}?next={reverse('console')}",
    }
    return render(
        request,
        "agents/console.html",
        {
            "boot": boot,
            "presence_choices": [(p.value, p.label) for p in SELECTABLE_PRESENCE],
            "reminder_choices": ReminderMode.choices,
            "section": "console",
        },
    )


@console_page
def contact(request: HttpRequest, membership: Membership, contact_id: int) -> HttpResponse:
    found = contact_get(tenant=membership.tenant, contact_id=contact_id)
    if found is None:
        raise Http404("No such contact.")
    # The read rule (chat.selectors.conversation_visibility): every agent sees the contact's history as the
    # customer saw it; private notes only of conversations they take part in, or all for supervisors.
    actor = AgentActor(tenant_id=membership.tenant_id, user=request.user, role=membership.role)  # type: ignore[arg-type]
    transcripts = contact_conversation_list(actor=actor, contact=found)
    return render(
        request,
        "agents/contact.html",
        {
            "contact": found,
            "transcripts": transcripts,
            "merges": list(found.merges.all()),
            "duplicates": contact_duplicates(tenant=membership.tenant, contact=found),
            "section": "contact",
        },
    )


@login_required
@require_POST
def contact_merge_form(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The contact page's "Merge into this contact" (a form, CSRF-checked): any member of the tenant, as the
    API's merge. Back to the page, which tells what happened."""
    membership: Membership | None = getattr(request.user, "membership", None)
    if membership is None:
        raise PermissionDenied("The console is for members of a tenant.")
    page = reverse("console-contact", args=[contact_id])
    raw = request.POST.get("merge_contact_id", "").strip().lstrip("#")
    if not raw.isdigit():
        messages.error(request, "Give the number of the contact to merge into this one (as in its page's address).")
        return redirect(page)
    try:
        record = contact_merge(
            tenant_id=membership.tenant_id,
            contact_id=contact_id,
            merged_contact_id=int(raw),
            merged_by=user_display_name(request.user),  # type: ignore[arg-type]
        )
    except NotFound as exc:
        raise Http404("No such contact.") from exc
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(page)
    moved = record.conversations_moved
    messages.success(
        request,
        f"Merged {record.merged_name or f'contact #{record.merged_contact_id}'} into this contact "
        f"({moved} conversation{'' if moved == 1 else 's'} moved).",
    )
    return redirect(page)


@console_page
def conversations(request: HttpRequest, membership: Membership) -> HttpResponse:
    contact_query = request.GET.get("contact", "")[:200]
    text_query = request.GET.get("q", "")[:200]
    results = with_queue(
        conversation_search(
            tenant=membership.tenant,
            taken_by=None if membership.has_role(Role.SUPERVISOR) else membership.user,
            contact_query=contact_query,
            text_query=text_query,
        )
    )
    page = Paginator(results, CONVERSATIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "agents/conversations.html",
        {"page": page, "contact_query": contact_query, "text_query": text_query, "section": "conversations"},
    )
