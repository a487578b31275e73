"""Auth codes (seed 001, "continue on the web with the history"): an integrator creates a short-lived, single-use
code for a contact; the customer's web chat, initialised with it, signs its visitor in as that contact. The
visitor sees the contact's history, and a conversation the contact has open on SMS, WhatsApp or email (or in
another browser) continues in this web chat: the way back to the web that the visitor's own switch button never
offers, because here the business chose it.

Only the code's SHA-256 is stored. Redeeming claims the code with one conditional UPDATE (unused, unexpired, this
tenant's), so two redemptions racing each other cannot both win; a code of another tenant is unknown here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from channels_switch.models import (
    AUTH_CODE_MINUTES_DEFAULT,
    AUTH_CODE_MINUTES_MAX,
    AuthCode,
    ChannelSettings,
    SwitchedBy,
)
from channels_switch.services.switch import switch_record
from chat.models import Channel, Conversation, ConversationStatus, Widget
from chat.services import rate_limit_refusal
from chat.services.state import conversation_channel_return
from chat.tokens import new_visitor_id
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Contact, IdentityKind
from contactcenter.services.contacts import contact_identity_add

CODE_BYTES = 24  # 32 URL-safe characters
CODE_MAX_CHARS = 100

# What a page is told when a code cannot sign its visitor in (docs/auth-codes.md); each an HTTP 400.
AUTH_CODE_ERRORS = {
    "auth_code_unknown": "This sign-in code is not valid.",
    "auth_code_used": "This sign-in code has already been used.",
    "auth_code_expired": "This sign-in code has expired.",
}


def auth_code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def auth_code_minutes(*, tenant_id: int) -> int:
    """The tenant's code lifetime in minutes (the default until an admin sets one)."""
    row = ChannelSettings.objects.for_tenant(tenant_id).first()
    return row.auth_code_minutes if row is not None else AUTH_CODE_MINUTES_DEFAULT


@transaction.atomic
def auth_code_minutes_set(*, tenant_id: int, minutes: int) -> ChannelSettings:
    if not 1 <= int(minutes) <= AUTH_CODE_MINUTES_MAX:
        raise ApplicationError(
            "invalid",
            "The auth code lifetime is 1 to 1440 minutes.",
            {"auth_code_minutes": [f"Between 1 and {AUTH_CODE_MINUTES_MAX}."]},
        )
    row, _ = ChannelSettings.objects.for_tenant(tenant_id).update_or_create(
        tenant_id=tenant_id, defaults={"auth_code_minutes": int(minutes)}
    )
    return row


@dataclass(frozen=True)
class IssuedCode:
    """The code itself exists only here, in the creator's answer: the database keeps its hash."""

    code: str
    auth_code: AuthCode


@transaction.atomic
def auth_code_create(*, tenant_id: int, contact_id: int, created_by: str) -> IssuedCode:
    """A new single-use code that signs a web visitor in as the contact, valid for the tenant's lifetime."""
    contact = Contact.objects.for_tenant(tenant_id).filter(pk=contact_id).first()
    if contact is None:
        raise NotFound("contact")
    code = secrets.token_urlsafe(CODE_BYTES)
    row = AuthCode.objects.create(
        tenant_id=tenant_id,
        contact=contact,
        code_hash=auth_code_hash(code),
        expires_at=timezone.now() + timedelta(minutes=auth_code_minutes(tenant_id=tenant_id)),
        created_by=created_by[:200],
    )
    return IssuedCode(code=code, auth_code=row)


@dataclass(frozen=True)
class Redeemed:
    """Who the widget's visitor now is, and the conversation that continues on the web (None: none was open)."""

    visitor_id: str
    contact: Contact
    conversation: Conversation | None


def _refused(code: str) -> ApplicationError:
    return ApplicationError(code, AUTH_CODE_ERRORS[code], {"auth_code": [AUTH_CODE_ERRORS[code]]})


def _check_rate(client_ip: str) -> None:
    refusal = rate_limit_refusal(
        setting="AUTH_CODE_REDEEM_RATE",
        scope="auth-code-ip",
        key=client_ip,
        problem="Too many sign-in codes tried from here",
    )
    if refusal is not None:
        raise refusal


def _claim(*, tenant_id: int, code: str) -> AuthCode:
    """Marks the code used, race-free, or says why it cannot be: unknown (also another tenant's), used, expired."""
    if not isinstance(code, str) or not code or len(code) > CODE_MAX_CHARS:
        raise _refused("auth_code_unknown")
    digest, now = auth_code_hash(code), timezone.now()
    mine = AuthCode.objects.for_tenant(tenant_id).filter(code_hash=digest)
    if mine.filter(used_at__isnull=True, expires_at__gt=now).update(used_at=now):
        return mine.select_related("contact").get()
    row = mine.first()
    if row is None:
        raise _refused("auth_code_unknown")
    raise _refused("auth_code_used" if row.used_at is not None else "auth_code_expired")


def _contact_label(contact: Contact) -> str:
    return contact.name or "The customer"


@transaction.atomic
def auth_code_redeem(*, widget: Widget, code: str, client_ip: str | None) -> Redeemed:
    """Signs a visitor of `widget` in as the code's contact: a web identity (verified: only this browser gets the
    token that carries it) on the contact, and the contact's open conversation, if any, continues here.

    - on this widget's web chat already: the visitor joins it (they become that chat's visitor);
    - on SMS, WhatsApp, email or another widget: it comes back to this web chat with its history; the switch is
      recorded (by the integrator), the conversation says "<name> continued on the web", integrators subscribed
      to `conversation.switched` are told.
    Refused (and nothing changes) for an unknown, used or expired code; past the per-address rate limit."""
    if client_ip is not None:
        _check_rate(client_ip)
    claimed = _claim(tenant_id=widget.tenant_id, code=code)
    # The contact's row first, as a merge and an inbound message take it: its conversations cannot move meanwhile.
    contact = Contact.objects.for_tenant(widget.tenant_id).select_for_update().filter(pk=claimed.contact_id).first()
    if contact is None:  # merged away since: its code went with it, so this is a race lost to the merge
        raise _refused("auth_code_unknown")
    open_conversation = (
        Conversation.objects.for_tenant(widget.tenant_id)
        .select_for_update(of=("self",))
        .filter(contact=contact)
        .exclude(status=ConversationStatus.CLOSED)
        .order_by("-pk")
        .first()
    )
    if (
        open_conversation is not None
        and open_conversation.channel == Channel.WEB
        and open_conversation.widget_id == widget.pk
        and open_conversation.visitor_id
    ):
        visitor_id = open_conversation.visitor_id
    else:
        visitor_id = new_visitor_id()
    contact_identity_add(contact=contact, kind=IdentityKind.WEB, value=visitor_id, verified=True)
    if open_conversation is not None and open_conversation.visitor_id != visitor_id:
        _bring_to_web(open_conversation, widget=widget, visitor_id=visitor_id, contact=contact, claimed=claimed)
    AuthCode.objects.for_tenant(widget.tenant_id).filter(pk=claimed.pk).update(
        widget=widget, conversation=open_conversation
    )
    return Redeemed(visitor_id=visitor_id, contact=contact, conversation=open_conversation)


def _bring_to_web(
    conversation: Conversation, *, widget: Widget, visitor_id: str, contact: Contact, claimed: AuthCode
) -> None:
    from_channel, address = conversation.channel, conversation.channel_address
    name = _contact_label(contact)
    conversation_channel_return(
        conversation=conversation,
        widget_id=widget.pk,
        visitor_id=visitor_id,
        notice=f"{name} continued on the web.",
        event_data={"from": from_channel, "to": Channel.WEB.value, "by": SwitchedBy.INTEGRATOR.value},
    )
    switch_record(
        conversation=conversation, from_channel=from_channel, address=address or widget.name, by=SwitchedBy.INTEGRATOR
    )
