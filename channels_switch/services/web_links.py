"""The console's "Send a link to continue on the web" (seed 001): the assigned agent of a conversation on SMS,
WhatsApp or email sends the customer, as an ordinary message on that channel, a link to the hosted chat page of a
widget with a fresh auth code in its fragment (`/chat/<public_key>/#code=…`). Opening it signs the browser in as the
contact (services/auth_codes.py) and the conversation goes on in the web chat with its history.

The code, the message and its provider delivery are written in one transaction: a refusal of the message (the
WhatsApp 24-hour window, an SMS number that has not answered yet) leaves no code behind, and a code is never made
without the message that carries it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from channels_switch.services.auth_codes import auth_code_create, auth_code_minutes
from chat.models import Channel, Conversation, ConversationStatus, Message, Widget
from chat.selectors import AgentActor, conversation_get_for
from chat.services import message_post
from contactcenter.errors import ApplicationError, PermissionDenied
from contactcenter.models import user_display_name


def web_link_widget(*, conversation: Conversation) -> Widget | None:
    """The widget whose hosted page the link opens: the conversation's own (a chat that began on the web), else the
    tenant's first widget."""
    if conversation.widget_id is not None:
        return Widget.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.widget_id).first()
    return Widget.objects.for_tenant(conversation.tenant_id).order_by("pk").first()


def web_link_refusal(*, conversation: Conversation, user_id: int) -> ApplicationError | None:
    """Why the agent `user_id` may not send this conversation a link to the web chat now, or None: only the
    assignee of a live conversation on SMS, WhatsApp or email may, when the tenant has a widget."""
    if conversation.status == ConversationStatus.CLOSED:
        return ApplicationError(
            "conversation_closed", "This conversation is closed: reopen it to send a link.", status=409
        )
    if conversation.channel == Channel.WEB:
        return ApplicationError(
            "web_link_unavailable", "This chat is on the web already: the customer writes here.", status=409
        )
    if conversation.assignee_id != user_id:
        return PermissionDenied("Only the agent assigned to this conversation can send it a link.")
    if conversation.contact_id is None:
        return ApplicationError("web_link_unavailable", "This conversation has no contact to sign in.", status=409)
    if web_link_widget(conversation=conversation) is None:
        return ApplicationError(
            "web_link_unavailable",
            "There is no web chat to continue in: add a widget in Settings → Widgets.",
            status=409,
        )
    return None


def web_link_url(*, widget: Widget, code: str) -> str:
    """The hosted chat page with the code in the fragment, which browsers never send to a server."""
    return f"{settings.SITE_URL}{reverse('widget-hosted', args=[widget.public_key])}#code={code}"


@dataclass(frozen=True)
class WebLinkSent:
    url: str
    expires_at: datetime
    message: Message  # the agent's message on the conversation's channel that carries the link


@transaction.atomic
def web_link_send(*, actor: AgentActor, conversation_id: int) -> WebLinkSent:
    """Makes an auth code for the conversation's contact and sends the link to the hosted chat page as the agent's
    message on the conversation's channel (its delivery row goes into the relay's outbox with it)."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    refusal = web_link_refusal(conversation=conversation, user_id=actor.user.pk)
    if refusal is not None:
        raise refusal
    widget = web_link_widget(conversation=conversation)
    assert widget is not None and conversation.contact_id is not None
    issued = auth_code_create(
        tenant_id=actor.tenant_id, contact_id=conversation.contact_id, created_by=user_display_name(actor.user)
    )
    url = web_link_url(widget=widget, code=issued.code)
    minutes = auth_code_minutes(tenant_id=actor.tenant_id)
    body = (
        f"You can go on with this conversation in our web chat, with everything said so far: {url}\n"
        f"The link works once, within {minutes} minute{'' if minutes == 1 else 's'}. Or just reply here."
    )
    # A client id of its own: every press of the button is a new link (a retried request makes a second code,
    # which simply expires unused).
    posted = message_post(actor=actor, conversation_id=conversation.pk, body=body, client_id=f"web-link-{uuid.uuid4()}")
    return WebLinkSent(url=url, expires_at=issued.auth_code.expires_at, message=posted.message)
