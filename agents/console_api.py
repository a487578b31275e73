"""The console's JSON endpoints beside its socket (docs/protocol.md §7): the inbox, one conversation, uploads,
files, older history, a WhatsApp conversation's window and templates, links to continue a web chat on a messaging
app, the agent's reminder preferences, and sessions the agent starts (or reopens) with a customer on SMS, WhatsApp
or email."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from agents.console_state import console_conversation, console_inbox, console_inbox_rows
from agents.services import agent_reminders_set
from channels_switch.models import ConnectorKind
from channels_switch.selectors import link_channels, session_connectors, session_contacts_find, whatsapp_composer
from channels_switch.services import (
    ACCOUNT_NEEDED,
    SessionStarted,
    address_display,
    session_reopen,
    session_start,
    switch_options,
    whatsapp_placeholder_count,
)
from channels_switch.services.link_requests import LINK_BUTTONS, link_request_send, link_send_refusal
from channels_switch.services.web_links import web_link_refusal, web_link_send
from chat import events
from chat.selectors import (
    AgentActor,
    agent_actor_for,
    attachment_get_for,
    conversation_get_for,
    conversation_history,
)
from chat.services import attachment_served_type, attachment_upload
from chat.tokens import agent_attachment_url
from contactcenter.errors import ApplicationError
from contactcenter.jsonhttp import download_response, json_endpoint, read_json
from queueing.selectors import INBOX_LIMIT, inbox_filters_clean
from queueing.services.collaboration import colleagues_for, queue_choices


def console_endpoint(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Session-authenticated JSON: 401/403 as JSON instead of a login redirect; the actor is passed in."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            raise ApplicationError("not_authenticated", "Sign in to the console first.", status=401)
        actor = agent_actor_for(request.user)
        if actor is None:
            raise ApplicationError("forbidden", "This account is not a member of a contact center.", status=403)
        return view(request, actor, *args, **kwargs)

    return json_endpoint(wrapper)


def _int_param(request: HttpRequest, name: str, default: int | None) -> int | None:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApplicationError("invalid", f"{name} is a whole number.", {name: ["Expected a number."]}) from exc


def _ids_param(request: HttpRequest, name: str) -> list[int]:
    raw = request.GET.get(name, "")
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise ApplicationError("invalid", f"{name} is a list of ids.", {name: ["Comma-separated numbers."]}) from exc


@require_http_methods(["GET"])
@console_endpoint
def console_inbox_list(request: HttpRequest, actor: AgentActor) -> HttpResponseBase:
    """The inbox: a page of the conversations the agent may see, or (`ids`) the rows an `inbox.changed` named."""
    filters = inbox_filters_clean(
        assignee=request.GET.get("assignee", "all"),
        channel=request.GET.get("channel", ""),
        status=request.GET.get("status", ""),
    )
    if "ids" in request.GET:
        ids = _ids_param(request, "ids")
        return JsonResponse(console_inbox_rows(actor=actor, filters=filters, conversation_ids=ids))
    limit = _int_param(request, "limit", INBOX_LIMIT) or INBOX_LIMIT
    cursor = request.GET.get("cursor") or None
    return JsonResponse(console_inbox(actor=actor, filters=filters, cursor=cursor, limit=limit))


@require_http_methods(["GET"])
@console_endpoint
def console_conversation_get(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """One conversation as the console's tab shows it (read access: yours, or any for supervisors and admins)."""
    return JsonResponse({"conversation": console_conversation(actor=actor, conversation_id=conversation_id)})


@require_http_methods(["POST"])
@console_endpoint
def console_upload(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    upload = request.FILES.get("file")
    if upload is None:
        raise ApplicationError("invalid", "Send the file in the `file` field.", {"file": ["This field is required."]})
    attachment = attachment_upload(actor=actor, conversation_id=conversation_id, upload=upload)
    data: dict[str, Any] = dict(events.attachment_data(attachment))
    data["url"] = agent_attachment_url(attachment_id=attachment.pk)
    return JsonResponse({"attachment": data}, status=201)


@require_http_methods(["GET"])
@console_endpoint
def console_attachment(request: HttpRequest, actor: AgentActor, attachment_id: int) -> HttpResponseBase:
    attachment = attachment_get_for(actor=actor, attachment_id=attachment_id)
    return download_response(
        attachment.file, filename=attachment.filename, content_type=attachment_served_type(attachment)
    )


@require_http_methods(["GET"])
@console_endpoint
def console_switch_options(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """The channels this web chat may move to now, in the widget's order, each offered or with the reason."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    channels = [
        {
            "channel": option.channel,
            "offered": option.offered,
            "reason": option.reason,
            "address": address_display(option.channel, option.address) if option.offered else "",
        }
        for option in switch_options(conversation=conversation)
    ]
    return JsonResponse({"channels": channels})


@require_http_methods(["GET", "POST"])
@console_endpoint
def console_links(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """The console's "Send a link to continue on…" (docs/protocol.md §7). GET: the channels links can go out on
    for this chat now (none, with the reason, when it is not the agent's live web chat or no channel is on). POST
    `{"channels": [...]}`: the links are made and posted into the chat as one message (`link_request.sent`)."""
    if request.method == "POST":
        data = read_json(request)
        channels = data.get("channels")
        if not isinstance(channels, list) or not all(isinstance(channel, str) for channel in channels):
            raise ApplicationError("invalid", "Choose the channels.", {"channels": ["A list of channels."]})
        sent = link_request_send(actor=actor, conversation_id=conversation_id, channels=channels)
        links = [
            {"channel": link.channel, "url": link.url, "expires_at": events.iso(link.expires_at)}
            for link in sent.issued.links
        ]
        return JsonResponse(
            {"links": links, "unavailable": sent.issued.unavailable, "message_id": sent.message.pk}, status=201
        )
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    refusal = link_send_refusal(conversation=conversation, user_id=actor.user.pk)
    if refusal is not None:
        return JsonResponse({"channels": [], "reason": refusal.message})
    kinds = link_channels(tenant_id=actor.tenant_id)
    channels = [
        {"channel": kind, "label": ConnectorKind(kind).label, "button": LINK_BUTTONS[ConnectorKind(kind)]}
        for kind in kinds
    ]
    reason = "" if channels else "No WhatsApp, SMS or email channel is on."
    return JsonResponse({"channels": channels, "reason": reason})


@require_http_methods(["GET", "POST"])
@console_endpoint
def console_web_link(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """The console's "Send a link to continue on the web" (docs/protocol.md §7). GET: whether this conversation may
    be sent one now (`available`, or the `reason` it may not). POST: an auth code for its contact, sent as the
    agent's message on the conversation's channel with the link to the hosted chat page."""
    if request.method == "POST":
        sent = web_link_send(actor=actor, conversation_id=conversation_id)
        return JsonResponse(
            {"url": sent.url, "expires_at": events.iso(sent.expires_at), "message_id": sent.message.pk}, status=201
        )
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    refusal = web_link_refusal(conversation=conversation, user_id=actor.user.pk)
    return JsonResponse({"available": refusal is None, "reason": refusal.message if refusal is not None else ""})


@require_http_methods(["GET"])
@console_endpoint
def console_colleagues(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """Whom the chat may be transferred to or who may be invited: the tenant's other agents, each available or
    with the reason, and the queues with how many of their members are online."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    agents = [
        {
            "user_id": c.user_id,
            "name": c.name,
            "presence": c.presence,
            "chats": c.chats,
            "max_chats": c.max_chats,
            "available": c.available,
            "reason": c.reason,
        }
        for c in colleagues_for(actor=actor, conversation=conversation)
    ]
    queues = [{"id": q.pk, "name": q.name, "online": online} for q, online in queue_choices(actor=actor)]
    return JsonResponse({"agents": agents, "queues": queues})


@require_http_methods(["GET"])
@console_endpoint
def console_whatsapp(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """A WhatsApp conversation's composer: whether free text may go now (the 24-hour window since the customer's
    last message), why not, and the tenant's templates the agent may send instead (docs/protocol.md §7)."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    if conversation.channel != ConnectorKind.WHATSAPP:
        raise ApplicationError("invalid", "This is not a WhatsApp conversation.", {"conversation": ["Not WhatsApp."]})
    composer = whatsapp_composer(conversation=conversation, now=timezone.now())
    window = composer.window
    templates = [
        {
            "id": template.pk,
            "name": template.name,
            "language": template.language,
            "body": template.body,
            "variables": whatsapp_placeholder_count(template.body),
        }
        for template in composer.templates
    ]
    return JsonResponse(
        {
            "window": {
                "open": window.open,
                "ends_at": events.iso(window.ends_at),
                "last_customer_message_at": events.iso(window.last_customer_message_at),
            },
            "awaiting_customer": composer.awaiting_customer,
            "reason": composer.reason,
            "templates": templates,
        }
    )


@require_http_methods(["GET"])
@console_endpoint
def console_history(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    before = _int_param(request, "before", None)
    limit = _int_param(request, "limit", 1) or 1
    return JsonResponse(conversation_history(actor=actor, conversation_id=conversation_id, before=before, limit=limit))


PREFERENCE_FIELDS = {"reminder_mode", "reminder_seconds"}


@require_http_methods(["POST"])
@console_endpoint
def console_preferences(request: HttpRequest, actor: AgentActor) -> HttpResponseBase:
    """The signed-in agent's own reminder preferences (never anyone else's: there is no id to name)."""
    data = read_json(request)
    unknown = sorted(set(data) - PREFERENCE_FIELDS)
    if unknown:
        message = f"Unknown field: {', '.join(unknown)}."
        raise ApplicationError("invalid", message, {name: ["Not a preference."] for name in unknown})
    mode = data.get("reminder_mode")
    if not isinstance(mode, str):
        message = "reminder_mode is required, as text."
        raise ApplicationError("invalid", message, {"reminder_mode": [message]})
    seconds = data.get("reminder_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        message = "reminder_seconds is a whole number of seconds."
        raise ApplicationError("invalid", message, {"reminder_seconds": [message]})
    profile = agent_reminders_set(tenant_id=actor.tenant_id, user=actor.user, mode=mode, seconds=seconds)
    return JsonResponse(
        {"preferences": {"reminder_mode": profile.reminder_mode, "reminder_seconds": profile.reminder_seconds}}
    )


# --- agent-started sessions (seed 003): the channels, contacts to pick from, start and reopen ---------------


def _session_result(started: SessionStarted, status: int) -> JsonResponse:
    return JsonResponse({"conversation_id": started.conversation.pk, "reopened": started.reopened}, status=status)


def _optional_id(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError("invalid", f"{name} is a whole number.", {name: ["Expected a number."]})
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApplicationError("invalid", f"{name} is text.", {name: ["Expected text."]})
    return value


@require_http_methods(["GET"])
@console_endpoint
def console_session_channels(request: HttpRequest, actor: AgentActor) -> HttpResponseBase:
    """The channels the agent may start a session on (none: the console hides "+ New session"), each with the
    kind of account it needs."""
    connectors = [
        {
            "id": connector.pk,
            "kind": connector.kind,
            "label": ConnectorKind(connector.kind).label,
            "account_hint": ACCOUNT_NEEDED[ConnectorKind(connector.kind)],
        }
        for connector in session_connectors(tenant_id=actor.tenant_id)
    ]
    return JsonResponse({"connectors": connectors})


@require_http_methods(["GET"])
@console_endpoint
def console_session_contacts(request: HttpRequest, actor: AgentActor) -> HttpResponseBase:
    """Contacts to start a session with, by name or address (`q`, at least 2 characters)."""
    found = session_contacts_find(tenant_id=actor.tenant_id, query=request.GET.get("q", ""))
    contacts = [
        {
            "id": item.contact.pk,
            "name": item.contact.name,
            "identities": [
                {"kind": identity.kind, "value": identity.value, "verified": identity.verified}
                for identity in item.identities
            ],
            "closed_sessions": item.closed_sessions,
        }
        for item in found
    ]
    return JsonResponse({"contacts": contacts})


@require_http_methods(["POST"])
@console_endpoint
def console_session_start(request: HttpRequest, actor: AgentActor) -> HttpResponseBase:
    """Starts a session with a customer on a channel, assigned to the agent (`session_exists` names the open one
    with `conversation_id`)."""
    data = read_json(request)
    connector_id = _optional_id(data, "connector_id")
    if connector_id is None:
        raise ApplicationError("invalid", "Choose a channel.", {"connector_id": ["Choose a channel."]})
    started = session_start(
        actor=actor,
        connector_id=connector_id,
        contact_id=_optional_id(data, "contact_id"),
        contact_name=_text(data, "contact_name"),
        account=_text(data, "account"),
    )
    return _session_result(started, 201)


@require_http_methods(["POST"])
@console_endpoint
def console_session_reopen(request: HttpRequest, actor: AgentActor, conversation_id: int) -> HttpResponseBase:
    """Reopens a closed SMS, WhatsApp or email session for the agent."""
    return _session_result(session_reopen(actor=actor, conversation_id=conversation_id), 200)
