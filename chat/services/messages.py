"""Message storage: posting (deduplicated by client_id, rate-limited), system notices, read marks, previews."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat import events
from chat.models import (
    Attachment,
    Channel,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Message,
    SenderKind,
)
from chat.selectors import (
    Actor,
    AgentActor,
    VisitorActor,
    conversation_get_for,
)
from chat.services.message_sql import _post_fast, _rate_window, _take_seq, message_rate_limit
from chat.signals import outbound_message_stored, waiting_message_stored
from contactcenter.errors import ApplicationError, NotFound, PermissionDenied
from contactcenter.ratelimit import rate_parse, ratelimit_hit
from contactcenter.realtime import (
    conversation_agents_group,
    conversation_group,
    publish_on_commit,
    tenant_inbox_group,
)
from contactcenter.services.webhooks_out import MESSAGE_CREATED, message_data, webhook_event_record, webhooks_wanted

CLIENT_ID_MAX = 64


class RateLimited(ApplicationError):
    def __init__(self, message: str, retry_after: int):
        super().__init__("rate_limited", message, status=429)
        self.retry_after = retry_after


def rate_limit_refusal(*, setting: str, scope: str, key: str, problem: str) -> RateLimited | None:
    """Counts one hit of `key` against the rate the setting `setting` names: the refusal to raise once it is used
    up ("<problem>: try again in N seconds."), else None (also when the setting turns the limit off)."""
    rate = rate_parse(getattr(settings, setting), setting=setting)
    retry_after = ratelimit_hit(scope=scope, key=key, rate=rate) if rate is not None else None
    if retry_after is None:
        return None
    unit = "second" if retry_after == 1 else "seconds"
    return RateLimited(f"{problem}: try again in {retry_after} {unit}.", retry_after)


@dataclass(frozen=True)
class PostResult:
    message: Message
    # False when the client_id was already stored: the caller acks the stored message, nothing is announced.
    created: bool


def _clean_client_id(client_id: str | None) -> str:
    if client_id is None or not client_id.strip() or len(client_id) > CLIENT_ID_MAX:
        raise ApplicationError(
            "client_id_required",
            f"Each message needs a client_id of 1 to {CLIENT_ID_MAX} characters (a UUID).",
            {"client_id": ["Required, 1 to 64 characters."]},
        )
    return client_id


def _clean_body(body: str, *, allow_empty: bool) -> str:
    limit = settings.MESSAGE_MAX_CHARS
    if len(body) > limit:
        raise ApplicationError(
            "message_too_long", f"A message is at most {limit} characters.", {"body": [f"At most {limit} characters."]}
        )
    if not body.strip() and not allow_empty:
        raise ApplicationError("message_empty", "Write something or attach a file.", {"body": ["Empty message."]})
    return body


def _append_message(conversation: Conversation, **fields: Any) -> Message:
    """Next seq for a conversation whose row the caller holds locked (or has just created)."""
    return _append_messages(conversation, [fields])[0]


def _append_messages(conversation: Conversation, rows: Sequence[dict[str, Any]]) -> list[Message]:
    """The next seqs, one per row of fields, taken in one UPDATE of the conversation (whose row the caller holds
    locked, or has just created); the messages stored in one INSERT."""
    now = timezone.now()
    first = conversation.last_seq + 1
    conversation.last_seq += len(rows)
    conversation.last_message_at = now
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=conversation.last_seq, last_message_at=now)
    messages = Message.objects.bulk_create(
        [
            Message(
                tenant_id=conversation.tenant_id,
                conversation=conversation,
                seq=first + offset,
                channel=conversation.channel,
                **fields,
            )
            for offset, fields in enumerate(rows)
        ]
    )
    for message in messages:
        _webhook_message_created(message)
    return messages


def _webhook_message_created(message: Message) -> None:
    """`message.created` for integrators, in the storing transaction (system notices have events of their own)."""
    if message.sender_kind != SenderKind.SYSTEM:
        webhook_event_record(tenant_id=message.tenant_id, type=MESSAGE_CREATED, data=message_data(message))


def _publish_message(conversation: Conversation, message: Message, attachments: list[Attachment] | None = None) -> None:
    _publish(conversation.tenant_id, message, attachments)


def _publish(tenant_id: int, message: Message, attachments: list[Attachment] | None = None) -> None:
    if message.is_private:
        group = conversation_agents_group(tenant_id, message.conversation_id)
    else:
        group = conversation_group(tenant_id, message.conversation_id)
    publish_on_commit(group=group, event=events.message_new(message, attachments or []))
    publish_on_commit(group=tenant_inbox_group(tenant_id), event=events.inbox_changed(message.conversation_id))


@dataclass(frozen=True)
class Notice:
    """A system notice to store ("agent.joined", "conversation.closed"; `private`: for the agents only, as a
    note is)."""

    event: str
    body: str
    event_data: dict[str, Any] | None = None
    private: bool = False


def system_notice_post(
    *,
    conversation: Conversation,
    event: str,
    body: str,
    event_data: dict[str, Any] | None = None,
    private: bool = False,
) -> Message:
    """A stored system notice; the caller holds the row lock."""
    notice = Notice(event=event, body=body, event_data=event_data, private=private)
    return system_notices_post(conversation=conversation, notices=[notice])[0]


def system_notices_post(*, conversation: Conversation, notices: Sequence[Notice]) -> list[Message]:
    """Several system notices in a row, their seqs taken at once; the caller holds the row lock."""
    messages = _append_messages(
        conversation,
        [
            {
                "sender_kind": SenderKind.SYSTEM,
                "body": notice.body,
                "event": notice.event,
                "event_data": notice.event_data or {},
                "is_private": notice.private,
            }
            for notice in notices
        ],
    )
    for message in messages:
        _publish_message(conversation, message)
    return messages


def introduction_post(
    *,
    conversation: Conversation,
    body: str,
    event_data: dict[str, Any],
    relay: object = None,
    event: str = "channel.introduction",
) -> Message:
    """The first message on a provider's channel after a switch, written by Switchboard itself (who is writing
    and how to reply): stored on the conversation's new channel and handed to the relay like an agent's
    reply (`outbound_message_stored`, with `relay` as message_post hands it), in the caller's transaction; the
    caller holds the row lock. `event` "channel.held_replies": the agent replies an introduction could not carry
    (a WhatsApp template), sent once the customer answered it."""
    message = _append_message(
        conversation,
        sender_kind=SenderKind.SYSTEM,
        body=body,
        event=event,
        event_data=event_data,
        delivery_status=DeliveryStatus.PENDING,
    )
    outbound_message_stored.send(sender=Message, message=message, attachments=[], relay=relay)
    _publish_message(conversation, message)
    return message


def switched_away(conversation: Conversation) -> ApplicationError:
    """What a visitor hears who writes to (or ends) a web chat that moved to another channel."""
    label = Channel(conversation.channel).label
    return ApplicationError(
        "conversation_switched",
        f"This conversation continues by {label}; start a new chat to write here.",
        status=409,
    )


def _existing_message(conversation_id: int, client_id: str, actor: Actor) -> Message | None:
    message = Message.objects.filter(
        tenant_id=actor.tenant_id, conversation_id=conversation_id, client_id=client_id
    ).first()
    if message is None:
        return None
    # The resend path only: the first try was authorised, but this actor may not be the one who made it.
    conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    if isinstance(actor, VisitorActor):
        same_sender = message.sender_kind == SenderKind.VISITOR
    else:
        same_sender = message.sender_kind == SenderKind.AGENT and message.sender_user_id == actor.user.pk
    if not same_sender:
        raise ApplicationError("duplicate_client_id", "This client_id belongs to another message.")
    return message


@transaction.atomic
def whisper_post(*, actor: AgentActor, conversation_id: int, body: str, client_id: str | None) -> PostResult:
    """A supervisor's private note ("whisper") in a chat they follow without taking part: only the agents see it.
    Supervisors and admins only; the chat must not be closed. Once per client_id, as any message."""
    if not actor.supervises:
        raise PermissionDenied("Only supervisors and admins whisper in a colleague's chat.")
    client_id = _clean_client_id(client_id)
    text = _clean_body(body, allow_empty=False)
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, lock=True)
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is not None:
        return PostResult(message=existing, created=False)
    if conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("conversation_closed", "This conversation is closed.", status=409)
    message = _append_message(
        conversation,
        sender_kind=SenderKind.AGENT,
        sender_user=actor.user,
        body=text,
        client_id=client_id,
        is_private=True,
    )
    _publish_message(conversation, message)
    return PostResult(message=message, created=True)


def message_post(
    *,
    actor: Actor,
    conversation_id: int,
    body: str,
    client_id: str | None,
    private: bool = False,
    attachment_ids: Sequence[int] = (),
    relay: object = None,
) -> PostResult:
    """Stores a message with the conversation's next seq, once per client_id, and announces it after commit.

    On PostgreSQL outside a caller's transaction, a text message is one statement (_post_fast_sql), which
    also counts the rate window. Everything else, and every case that statement declines (a resend, a
    closed or foreign conversation, the rate used up, a lost race), takes the full path: the dedupe SELECT, then the
    UPDATE … RETURNING that authorises and takes the seq (docs/protocol.md §2) and the INSERT in one
    transaction, with exact errors.

    The arguments come typed from the edge (contactcenter.sockets' field readers); this checks their values.
    A `client_id` None is one the client did not send usably (`client_id_required`). `relay`: for an agent's
    message on a provider's channel, what the app that relays it needs beyond the text (channels_switch's
    WhatsApp template), handed on untouched with `outbound_message_stored`; chat never reads it.
    """
    client_id = _clean_client_id(client_id)
    if private and isinstance(actor, VisitorActor):
        raise ApplicationError("invalid", "Only agents write private notes.", {"private": ["Not allowed."]})
    # The one-statement path stores no webhook event: a tenant with webhook subscriptions takes the full one.
    fast_path = not attachment_ids and relay is None and connection.vendor == "postgresql"
    if fast_path and not connection.in_atomic_block and not webhooks_wanted(actor.tenant_id):
        try:
            text = _clean_body(body, allow_empty=False)
        except ApplicationError:
            text = None  # the full path says so, after the errors that come first (closed, not found)
        if text is not None:
            fast = _post_fast(
                actor=actor, conversation_id=conversation_id, text=text, client_id=client_id, private=private
            )
            if fast is not None:
                message, status = fast
                _publish(actor.tenant_id, message, [])
                if status == ConversationStatus.WAITING:
                    _waiting_preview_publish(message)
                return PostResult(message=message, created=True)
    # Dedupe comes first: a resend is answered with the stored message, even once the conversation closed.
    existing = _existing_message(conversation_id, client_id, actor)
    if existing is not None:
        return PostResult(message=existing, created=False)
    try:
        # One transaction (a savepoint inside a caller's): a resend racing its original waits on the row
        # lock of the UPDATE, then hits the client_id constraint, and the rollback takes its seq back too,
        # so the stored seqs keep no hole.
        with transaction.atomic():
            message = _store_message(
                actor=actor,
                conversation_id=conversation_id,
                body=body,
                client_id=client_id,
                private=private,
                attachment_ids=attachment_ids,
                relay=relay,
            )
    except IntegrityError:
        existing = _existing_message(conversation_id, client_id, actor)
        if existing is None:
            raise
        return PostResult(message=existing, created=False)
    return PostResult(message=message, created=True)


def _store_message(
    *,
    actor: Actor,
    conversation_id: int,
    body: str,
    client_id: str,
    private: bool,
    attachment_ids: Sequence[int],
    relay: object = None,
) -> Message:
    rate = _rate_window()
    taken = _take_seq(actor, conversation_id, rate)
    if taken is None:
        # Not writable, not found, closed or over the rate: the full check (under the row lock) says which.
        conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
        if conversation.status == ConversationStatus.CLOSED:
            raise ApplicationError("conversation_closed", "This conversation is closed.", status=409)
        if isinstance(actor, VisitorActor) and conversation.channel != Channel.WEB:
            raise switched_away(conversation)
        side = "visitor" if isinstance(actor, VisitorActor) else "agent"
        if (
            getattr(conversation, f"{side}_rate_window") == rate.index
            and getattr(conversation, f"{side}_rate_count") >= rate.limit
        ):
            count, seconds = message_rate_limit()
            raise RateLimited(f"Too many messages: at most {count} every {seconds} seconds.", rate.retry_after)
        taken = _take_seq(actor, conversation_id, rate)  # the access changed in between (say, just assigned)
        if taken is None:
            raise NotFound("conversation")
    seq, channel, status = taken
    text = _clean_body(body, allow_empty=bool(attachment_ids))
    attachments: list[Attachment] = []
    if attachment_ids:
        wanted = set(attachment_ids)
        candidates = Attachment.objects.for_tenant(actor.tenant_id).filter(
            pk__in=wanted, conversation_id=conversation_id, message__isnull=True
        )
        if isinstance(actor, VisitorActor):
            candidates = candidates.filter(uploaded_by_visitor=True)
        else:
            candidates = candidates.filter(uploaded_by_visitor=False, uploaded_by=actor.user)
        attachments = list(candidates.select_for_update())
        if len(attachments) != len(wanted):
            raise ApplicationError(
                "invalid_attachment",
                "An attachment is unknown, already sent, or not yours.",
                {"attachment_ids": ["Invalid attachment."]},
            )
    fields: dict[str, Any] = {"body": text, "client_id": client_id, "is_private": bool(private)}
    if isinstance(actor, VisitorActor):
        fields["sender_kind"] = SenderKind.VISITOR
    else:
        fields.update(sender_kind=SenderKind.AGENT, sender_user=actor.user)
    outbound = channel != Channel.WEB and fields["sender_kind"] == SenderKind.AGENT and not private
    if outbound:
        fields["delivery_status"] = DeliveryStatus.PENDING
    message = Message.objects.create(
        tenant_id=actor.tenant_id, conversation_id=conversation_id, seq=seq, channel=channel, **fields
    )
    _webhook_message_created(message)
    if attachments:
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=message)
    if outbound:
        outbound_message_stored.send(sender=Message, message=message, attachments=attachments, relay=relay)
    _publish(actor.tenant_id, message, attachments)
    if status == ConversationStatus.WAITING:
        _waiting_preview_publish(message)
    return message


def _waiting_preview_publish(message: Message) -> None:
    """A waiting conversation's first visitor words, for the offers and waiting items shown without them.

    Offers and waiting items carry a preview (the first visitor message) when they are made; a chat started
    without a message gets its first one later, and the agents' sockets do not follow a conversation before
    accepting it. Only a waiting conversation's visitor messages come here (nobody else writes to it), and
    only the first one with text is announced: one extra read per message while the chat waits.
    """
    if message.sender_kind != SenderKind.VISITOR or not message.body:
        return
    first = (
        Message.objects.filter(
            tenant_id=message.tenant_id, conversation_id=message.conversation_id, sender_kind=SenderKind.VISITOR
        )
        .exclude(body="")
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    if first != message.seq:
        return
    waiting_message_stored.send(sender=Message, message=message)


@transaction.atomic
def conversation_mark_read(*, actor: Actor, conversation_id: int, seq: int) -> int:
    """Moves this side's "seen up to" marker forward (never back); returns the marker."""
    if seq < 0:
        raise ApplicationError("invalid", "seq is a whole number.", {"seq": ["Expected a whole number ≥ 0."]})
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    side = "visitor" if isinstance(actor, VisitorActor) else "agent"
    field = f"{side}_read_seq"
    seq = min(seq, conversation.last_seq)
    moved = Conversation.objects.filter(pk=conversation.pk, **{f"{field}__lt": seq}).update(**{field: seq})
    if moved:
        publish_on_commit(
            group=conversation_group(conversation.tenant_id, conversation.pk),
            event=events.read_event(
                conversation_id=conversation.pk,
                side=side,
                seq=seq,
                user_id=None if isinstance(actor, VisitorActor) else actor.user.pk,
            ),
        )
        if side == "agent":  # the inbox's unread count of this conversation changed
            publish_on_commit(
                group=tenant_inbox_group(conversation.tenant_id), event=events.inbox_changed(conversation.pk)
            )
        return seq
    return max(seq, getattr(conversation, field))


INBOUND_MAX_CHARS = 20_000  # a provider's message is never refused (it cannot be resent); past this it is cut


@transaction.atomic
def message_receive(
    *, conversation: Conversation, body: str, client_id: str, attachments: Sequence[Attachment] = ()
) -> Message:
    """A customer's message that came in through a provider (SMS, WhatsApp, email) on a conversation of that
    channel: stored with the next seq, with the files that came with it (stored by `attachment_receive`), and
    announced like a visitor's. The provider's message id is the client_id, so a repeat of it in the
    conversation is the stored message again. The caller found the conversation by a verified address; no rate
    window (the provider's own applies)."""
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk, tenant_id=conversation.tenant_id)
    existing = Message.objects.filter(
        tenant_id=locked.tenant_id, conversation_id=locked.pk, client_id=client_id
    ).first()
    if existing is not None:
        return existing
    text = body.replace("\x00", "")
    if len(text) > INBOUND_MAX_CHARS:
        text = text[: INBOUND_MAX_CHARS - 1] + "…"
    message = _append_message(locked, sender_kind=SenderKind.VISITOR, body=text, client_id=client_id)
    if attachments:
        Attachment.objects.filter(pk__in=[a.pk for a in attachments], conversation_id=locked.pk).update(message=message)
    _publish_message(locked, message, list(attachments))
    if locked.status == ConversationStatus.WAITING:
        _waiting_preview_publish(message)
    return message
