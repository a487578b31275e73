"""Starting a chat: the pre-chat survey's answers, the visitor's contact, the first message, retried starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.models import (
    Channel,
    Conversation,
    ConversationStatus,
    SenderKind,
    SurveyFieldKind,
    Widget,
)
from chat.services.hours import widget_open_at
from chat.services.messages import (
    _append_message,
    _clean_body,
    _clean_client_id,
    _publish_message,
    rate_limit_refusal,
    system_notice_post,
)
from chat.tokens import new_visitor_id
from contactcenter.errors import ApplicationError
from contactcenter.models import Contact, ContactIdentity, IdentityKind
from contactcenter.services import (
    contact_create,
    contact_identity_add,
    contact_update,
    identity_normalise,
)
from contactcenter.services.webhooks_out import CONVERSATION_CREATED, conversation_data, webhook_event_record

SURVEY_ANSWER_MAX = 500


@dataclass(frozen=True)
class SurveyResult:
    name: str
    answers: list[dict[str, str]]
    identities: list[tuple[str, str]]


def survey_validate(*, widget: Widget, answers: Mapping[str, str]) -> SurveyResult:
    """Checks the answers (field key → text, typed at the edge) against the widget's own survey fields; typed
    emails/phones come back normalised."""
    if not widget.survey_enabled:
        return SurveyResult(name="", answers=[], identities=[])
    errors: dict[str, list[str]] = {}
    cleaned: list[dict[str, str]] = []
    identities: list[tuple[str, str]] = []
    name = ""
    for field in widget.survey_fields or []:
        key, label, kind = str(field.get("key", "")), str(field.get("label", "")), str(field.get("kind", "text"))
        value = answers.get(key, "").strip()
        if not value:
            if field.get("required"):
                errors[key] = ["This field is required."]
            continue
        if len(value) > SURVEY_ANSWER_MAX:
            errors[key] = [f"At most {SURVEY_ANSWER_MAX} characters."]
            continue
        if kind in (SurveyFieldKind.EMAIL, SurveyFieldKind.PHONE):
            identity_kind = IdentityKind.EMAIL if kind == SurveyFieldKind.EMAIL else IdentityKind.PHONE
            try:
                value = identity_normalise(kind=identity_kind, value=value)
            except ApplicationError as exc:
                errors[key] = [next(iter(exc.fields.values()), [exc.message])[0]]
                continue
            identities.append((identity_kind, value))
        elif kind == SurveyFieldKind.NAME and not name:
            name = value[:200]
        cleaned.append({"key": key, "label": label, "value": value})
    if errors:
        first = next(iter(errors.values()))[0]
        raise ApplicationError("invalid", first, errors)
    return SurveyResult(name=name, answers=cleaned, identities=identities)


@dataclass(frozen=True)
class StartResult:
    conversation: Conversation
    # False when a retried start (same client_id) found the conversation it made before: nothing new.
    created: bool


def _started_with(widget: Widget, client_id: str) -> Conversation | None:
    return Conversation.objects.for_tenant(widget.tenant_id).filter(widget=widget, start_client_id=client_id).first()


def _start_replay(conversation: Conversation, visitor_id: str | None) -> StartResult:
    # Without a token the caller is taken for the visitor whose first try never got its answer (the random
    # client_id is the proof); with a token it must be that visitor's, never a second visitor's way in.
    if visitor_id is not None and conversation.visitor_id != visitor_id:
        raise ApplicationError(
            "duplicate_client_id",
            "This client_id started another visitor's conversation.",
            {"client_id": ["Already used: generate a new one."]},
            status=409,
        )
    return StartResult(conversation=conversation, created=False)


def _check_start_rate(widget: Widget, client_ip: str) -> None:
    """Refuses a start past WIDGET_SESSION_RATE (this address on this widget) or WIDGET_SESSION_RATE_WIDGET.

    The address is counted first and a refused one never reaches the widget's count, so one script alone
    cannot use up everybody's budget for the widget.
    """
    checks = (
        ("widget-start-ip", f"{widget.pk}:{client_ip}", "WIDGET_SESSION_RATE", "Too many chats started from here"),
        ("widget-start", str(widget.pk), "WIDGET_SESSION_RATE_WIDGET", "Too many chats are starting right now"),
    )
    for scope, key, setting, problem in checks:
        refusal = rate_limit_refusal(setting=setting, scope=scope, key=key, problem=problem)
        if refusal is not None:
            raise refusal


def _visitor_contact(widget: Widget, visitor_id: str) -> Contact | None:
    """The contact a returning visitor's browser already is: the one holding its web identity (oldest first).

    Before visitor ids linked contacts, every chat made a new contact with the same id: the oldest wins.
    """
    identity = (
        ContactIdentity.objects.for_tenant(widget.tenant)
        .filter(kind=IdentityKind.WEB, value=visitor_id)
        .select_related("contact")
        .order_by("-verified", "pk")
        .first()
    )
    return identity.contact if identity is not None else None


@transaction.atomic
def conversation_start(
    *,
    widget: Widget,
    visitor_id: str | None,
    answers: Mapping[str, str] | None = None,
    message: str = "",
    client_id: str | None = None,
    offline: bool = False,
    client_ip: str | None = None,
) -> StartResult:
    """A new waiting web conversation; typed email/phone become unverified identities of its contact.

    `visitor_id` None is a visitor without a token: a new visitor id is made, on a new contact. A visitor id
    comes from a valid signed token (the widget API checks it), so it is the same browser: the conversation
    joins the contact holding that web identity, whose earlier conversations become its history. The web
    identity is verified (the token proves it); typed addresses never are, and never link anything.
    `client_id` makes the start
    idempotent: a retry with it (within a visitor token's lifetime) returns the conversation the first try
    made, with its visitor, and creates nothing. It also becomes the first message's client_id.
    `offline`: no agent can take it now (the caller's admission); outside the widget's business hours it is
    offline whatever the caller says, and `started_offline` records which it became.
    `client_ip` (the widget API's caller) subjects the start to the widget session rate limits; a retry
    answered from the first try, and a refused invalid start, are not counted.
    """
    if client_id is not None:
        client_id = _clean_client_id(client_id)
        earlier = _started_with(widget, client_id)
        if earlier is not None:
            if earlier.created_at >= timezone.now() - timedelta(seconds=settings.VISITOR_TOKEN_MAX_AGE):
                return _start_replay(earlier, visitor_id)
            # Too old to be a retry: the key is released, so the unique constraint lets this start take it.
            Conversation.objects.filter(pk=earlier.pk).update(start_client_id=None)
    survey = survey_validate(widget=widget, answers=answers or {})
    body = _clean_body(message, allow_empty=True)
    # Outside the widget's business hours a start is a message left for later, whatever the agents' state.
    closed = not widget_open_at(widget=widget, now=timezone.now())
    offline = offline or closed
    if offline and not body.strip():
        raise ApplicationError(
            "offline_message_required",
            "No one is available right now: leave a message.",
            {"message": ["This field is required."]},
        )
    if client_ip is not None:
        _check_start_rate(widget, client_ip)
    visitor = visitor_id or new_visitor_id()
    try:
        with transaction.atomic():
            contact = _visitor_contact(widget, visitor_id) if visitor_id else None
            if contact is None:
                contact = contact_create(tenant=widget.tenant, name=survey.name)
            elif survey.name and not contact.name:
                contact_update(contact=contact, name=survey.name)
            for kind, value in survey.identities:
                # Never verified: anyone can type anyone's address. Only a verified identity links to history.
                contact_identity_add(contact=contact, kind=kind, value=value, verified=False)
            # Verified: only this browser holds the signed token that carries the id.
            contact_identity_add(contact=contact, kind=IdentityKind.WEB, value=visitor, verified=True)
            conversation = Conversation.objects.create(
                tenant_id=widget.tenant_id,
                contact=contact,
                widget=widget,
                visitor_id=visitor,
                channel=Channel.WEB,
                status=ConversationStatus.WAITING,
                survey=survey.answers,
                started_offline=offline,
                start_client_id=client_id,
            )
            webhook_event_record(
                tenant_id=widget.tenant_id, type=CONVERSATION_CREATED, data=conversation_data(conversation)
            )
    except IntegrityError:
        # A retry that raced its first try (the client gave up waiting): the constraint decided, and the
        # savepoint took this try's contact away with it.
        earlier = _started_with(widget, client_id) if client_id is not None else None
        if earlier is None:
            raise
        return _start_replay(earlier, visitor_id)
    if offline:
        system_notice_post(
            conversation=conversation,
            event="conversation.offline",
            body="Message left outside business hours." if closed else "Message left while no one was available.",
        )
    if body.strip():
        message_row = _append_message(
            conversation, sender_kind=SenderKind.VISITOR, body=body, client_id=client_id or None
        )
        _publish_message(conversation, message_row)
    return StartResult(conversation=conversation, created=True)


@transaction.atomic
def conversation_open_on_channel(*, contact: Contact, channel: str) -> Conversation:
    """A new waiting conversation a customer started on a provider's channel (an inbound SMS, WhatsApp message
    or email): no widget, no survey. The caller routes it (queueing.conversation_route) and stores the
    customer's first message (message_receive)."""
    if channel == Channel.WEB:
        raise ValueError("web conversations start from a widget (conversation_start)")
    conversation = Conversation.objects.create(tenant_id=contact.tenant_id, contact=contact, channel=channel)
    webhook_event_record(tenant_id=contact.tenant_id, type=CONVERSATION_CREATED, data=conversation_data(conversation))
    return conversation
