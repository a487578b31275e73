"""State changes of chat: widgets here; conversations and messages below."""

from __future__ import annotations

import codecs
import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from agents.models import Disposition
from chat import events
from chat.models import (
    DEFAULT_FILE_TYPES,
    Attachment,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    SenderKind,
    SurveyFieldKind,
    Widget,
)
from chat.selectors import (
    Actor,
    AgentActor,
    VisitorActor,
    conversation_get_for,
    conversation_preview,
    conversation_queue,
)
from chat.tokens import new_visitor_id
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Contact, ContactIdentity, IdentityKind, Tenant
from contactcenter.ratelimit import rate_parse, ratelimit_hit
from contactcenter.realtime import (
    conversation_agents_group,
    conversation_group,
    publish_on_commit,
    tenant_agents_group,
)
from contactcenter.services import (
    contact_create,
    contact_identity_add,
    contact_update,
    identity_normalise,
    validated_save,
)

# --- widgets -------------------------------------------------------------------------------------------


def origin_normalise(raw: str) -> str:
    """`https://shop.example.com:8443` form; refuses paths, wildcards and anything but http(s)."""
    raw = (raw or "").strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(raw)
    if "*" in raw or parts.username or parts.password:
        raise ValueError(raw)
    host = parts.hostname.lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _clean_origins(origins: Any) -> list[str]:
    if isinstance(origins, str):
        origins = [line for line in origins.replace(",", "\n").splitlines() if line.strip()]
    cleaned: list[str] = []
    bad: list[str] = []
    for origin in origins or []:
        try:
            normal = origin_normalise(str(origin))
        except ValueError:
            bad.append(str(origin))
            continue
        if normal not in cleaned:
            cleaned.append(normal)
    if bad:
        message = f"Not an origin (scheme://host[:port], no path): {', '.join(bad)}"
        raise ApplicationError("invalid", message, {"allowed_origins": [message]})
    return cleaned


SURVEY_KEY_MAX = 40


def _clean_survey_fields(fields: Any) -> list[dict[str, Any]]:
    if not isinstance(fields, list):
        raise ApplicationError("invalid", "Survey fields are a list.", {"survey_fields": ["Expected a list."]})
    cleaned: list[dict[str, Any]] = []
    keys: set[str] = set()
    errors: list[str] = []
    for index, field in enumerate(fields, start=1):
        if not isinstance(field, dict):
            errors.append(f"Field {index}: expected an object.")
            continue
        key = str(field.get("key", "")).strip()
        label = str(field.get("label", "")).strip()
        kind = str(field.get("kind", SurveyFieldKind.TEXT))
        if not key.isidentifier() or len(key) > SURVEY_KEY_MAX:
            errors.append(f"Field {index}: the key must be letters, digits and _ (at most {SURVEY_KEY_MAX}).")
        elif key in keys:
            errors.append(f"Field {index}: the key {key!r} is used twice.")
        if not label:
            errors.append(f"Field {index}: a label is required.")
        if kind not in SurveyFieldKind.values:
            errors.append(f"Field {index}: kind must be one of {', '.join(SurveyFieldKind.values)}.")
        keys.add(key)
        cleaned.append({"key": key, "label": label[:80], "kind": kind, "required": bool(field.get("required"))})
    if errors:
        raise ApplicationError("invalid", errors[0], {"survey_fields": errors})
    return cleaned


@transaction.atomic
def widget_save(*, tenant: Tenant, instance: Widget | None = None, **fields: Any) -> Widget:
    if "allowed_origins" in fields:
        fields["allowed_origins"] = _clean_origins(fields["allowed_origins"])
    if "survey_fields" in fields:
        fields["survey_fields"] = _clean_survey_fields(fields["survey_fields"])
    if "allowed_file_types" in fields:
        types = fields["allowed_file_types"]
        if isinstance(types, str):
            types = [t.strip() for t in types.replace(",", "\n").splitlines() if t.strip()]
        blocked = [t for t in types if t in {"text/html", "image/svg+xml", "application/xhtml+xml"}]
        if blocked:
            message = f"Never allowed (they can carry scripts): {', '.join(blocked)}"
            raise ApplicationError("invalid", message, {"allowed_file_types": [message]})
        fields["allowed_file_types"] = list(dict.fromkeys(types))
    return validated_save(instance or Widget(tenant=tenant), **fields)


@transaction.atomic
def widget_delete(*, widget: Widget) -> None:
    """Deletes a widget; refused while it has conversations waiting or open.

    Its queue route goes with it (the route's foreign key cascades), and past conversations stay
    without a widget.
    """
    live = Conversation.objects.for_tenant(widget.tenant).filter(
        widget=widget, status__in=[ConversationStatus.WAITING, ConversationStatus.OPEN]
    )
    if live.exists():
        raise ApplicationError(
            "widget_in_use", "This widget has conversations waiting or open: close them first.", status=409
        )
    widget.delete()


# --- live chat: conversations, messages, attachments (docs/protocol.md) ---------------------------------
# Every function authorises through chat.selectors.conversation_get_for, writes in one transaction and
# announces the change only through publish_on_commit.

CLIENT_ID_MAX = 64
SURVEY_ANSWER_MAX = 500
UPLOAD_ABSOLUTE_MAX = 50 * 1024 * 1024
SNIFF_BYTES = 2048
# Types that can carry scripts when a browser renders them: refused whatever a widget's settings say.
NEVER_ALLOWED_TYPES = frozenset(
    {
        "text/html",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
    }
)
MAGIC_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
# What a download may be served as; anything else goes out as application/octet-stream.
SAFE_SERVED_TYPES = frozenset(MAGIC_TYPES)
MARKUP_HINTS = (b"<html", b"<svg", b"<script", b"<!doctype", b"<?xml", b"<body", b"<iframe", b"<head")


class RateLimited(ApplicationError):
    def __init__(self, message: str, retry_after: int):
        super().__init__("rate_limited", message, status=429)
        self.retry_after = retry_after


def message_rate_limit() -> tuple[int, int]:
    """(messages, seconds) each side of a conversation (its visitor; its agents) may post; generous for people,
    not for scripts."""
    return settings.MESSAGE_RATE_COUNT, settings.MESSAGE_RATE_WINDOW_SECONDS


@dataclass(frozen=True)
class PostResult:
    message: Message
    # False when the client_id was already stored: the caller acks the stored message, nothing is announced.
    created: bool


@dataclass(frozen=True)
class SurveyResult:
    name: str
    answers: list[dict[str, str]]
    identities: list[tuple[str, str]]


def survey_validate(*, widget: Widget, answers: Any) -> SurveyResult:
    """Checks the answers against the widget's own survey fields; typed emails/phones come back normalised."""
    if answers is None:
        answers = {}
    if not isinstance(answers, Mapping):
        raise ApplicationError("invalid", "Answers are an object.", {"answers": ["Expected an object."]})
    if not widget.survey_enabled:
        return SurveyResult(name="", answers=[], identities=[])
    errors: dict[str, list[str]] = {}
    cleaned: list[dict[str, str]] = []
    identities: list[tuple[str, str]] = []
    name = ""
    for field in widget.survey_fields or []:
        key, label, kind = str(field.get("key", "")), str(field.get("label", "")), str(field.get("kind", "text"))
        raw = answers.get(key, "")
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            errors[key] = ["Expected text."]
            continue
        value = raw.strip()
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


def _clean_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > CLIENT_ID_MAX:
        raise ApplicationError(
            "client_id_required",
            f"Each message needs a client_id of 1 to {CLIENT_ID_MAX} characters (a UUID).",
            {"client_id": ["Required, 1 to 64 characters."]},
        )
    return client_id


def _clean_body(body: Any, *, allow_empty: bool) -> str:
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise ApplicationError("invalid", "The body is text.", {"body": ["Expected a string."]})
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
    now = timezone.now()
    conversation.last_seq += 1
    conversation.last_message_at = now
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=conversation.last_seq, last_message_at=now)
    return Message.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        seq=conversation.last_seq,
        channel=conversation.channel,
        **fields,
    )


def _publish_message(conversation: Conversation, message: Message, attachments: list[Attachment] | None = None) -> None:
    _publish(conversation.tenant_id, message, attachments)


def _publish(tenant_id: int, message: Message, attachments: list[Attachment] | None = None) -> None:
    if message.is_private:
        group = conversation_agents_group(tenant_id, message.conversation_id)
    else:
        group = conversation_group(tenant_id, message.conversation_id)
    publish_on_commit(group=group, event=events.message_new(message, attachments or []))


def system_notice_post(
    *, conversation: Conversation, event: str, body: str, event_data: dict[str, Any] | None = None
) -> Message:
    """A stored system notice ("agent.joined", "conversation.closed"); the caller holds the row lock."""
    message = _append_message(
        conversation, sender_kind=SenderKind.SYSTEM, body=body, event=event, event_data=event_data or {}
    )
    _publish_message(conversation, message)
    return message


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
        rate = rate_parse(getattr(settings, setting), setting=setting)
        retry_after = ratelimit_hit(scope=scope, key=key, rate=rate) if rate is not None else None
        if retry_after is not None:
            unit = "second" if retry_after == 1 else "seconds"
            raise RateLimited(f"{problem}: try again in {retry_after} {unit}.", retry_after)


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
    answers: Any = None,
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
    survey = survey_validate(widget=widget, answers=answers)
    body = _clean_body(message, allow_empty=True)
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
            body="Message left while no one was available.",
        )
    if body.strip():
        message_row = _append_message(
            conversation, sender_kind=SenderKind.VISITOR, body=body, client_id=client_id or None
        )
        _publish_message(conversation, message_row)
    return StartResult(conversation=conversation, created=True)


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


def _quoted_column(model: Any, name: str) -> str:
    """The quoted database column of `model.<name>` (for the hand-written message statements)."""
    field: Any = model._meta.get_field(name)
    return connection.ops.quote_name(field.column)


def _take_seq_parts(visitor: bool) -> tuple[str, str]:
    """(`UPDATE … SET`, `WHERE …`) that authorise the writer, count the rate and allocate the next seq.

    Built from the models' table and column names only (quoted); every value is a parameter, in the
    order `_take_seq_params` gives them. The row is left alone (nothing returned) when the actor may not
    write, the conversation is closed, or the sender's side has used up its rate window. The row lock it
    takes serialises the writers of one conversation until their transaction ends.
    """
    qn = connection.ops.quote_name
    meta = Conversation._meta
    table = qn(meta.db_table)

    def column(name: str) -> str:
        return _quoted_column(Conversation, name)

    def col(name: str) -> str:
        return f"{table}.{column(name)}"

    side = "visitor" if visitor else "agent"
    window, count = column(f"{side}_rate_window"), column(f"{side}_rate_count")
    where = [f"{col('id')} = %s", f"{col('tenant_id')} = %s", f"{col('status')} <> %s"]
    if visitor:
        where += [f"{col('visitor_id')} = %s", f"{col('visitor_id')} <> ''", f"{col('widget_id')} = %s"]
    else:
        participants: Any = meta.get_field("participants")
        through = qn(participants.remote_field.through._meta.db_table)
        conversation_column = f"{through}.{qn(participants.m2m_column_name())}"
        user_column = f"{through}.{qn(participants.m2m_reverse_name())}"
        where.append(
            f"({col('assignee_id')} = %s OR EXISTS (SELECT 1 FROM {through}"  # noqa: S608 (names from _meta)
            f" WHERE {conversation_column} = {col('id')} AND {user_column} = %s))"
        )
    where.append(f"({table}.{window} <> %s OR {table}.{count} < %s)")
    last_seq = column("last_seq")
    # SET expressions all read the row as it was, so the count restarts when the window moved on.
    update = (
        f"UPDATE {table} SET {last_seq} = {last_seq} + 1, {column('last_message_at')} = %s,"  # noqa: S608 (names from _meta)
        f" {count} = CASE WHEN {window} = %s THEN {count} + 1 ELSE 1 END, {window} = %s"
    )
    return update, " AND ".join(where)


@dataclass(frozen=True)
class _RateWindow:
    index: int  # which window now is in: unix time // seconds
    limit: int
    retry_after: int  # seconds until the next window


def _rate_window() -> _RateWindow:
    count, seconds = message_rate_limit()
    now = time.time()
    index = int(now // seconds)
    return _RateWindow(index=index, limit=count, retry_after=max(1, math.ceil((index + 1) * seconds - now)))


@functools.cache
def _take_seq_sql(vendor: str, visitor: bool) -> str:
    """The `UPDATE … RETURNING` of `_take_seq_parts`; cached per vendor (which only keys the cache)."""
    update, where = _take_seq_parts(visitor)
    return (
        f"{update} WHERE {where} RETURNING {_quoted_column(Conversation, 'last_seq')},"
        f" {_quoted_column(Conversation, 'channel')}, {_quoted_column(Conversation, 'status')}"
    )


def _take_seq_params(actor: Actor, conversation_id: int, rate: _RateWindow) -> list[Any]:
    params: list[Any] = [
        connection.ops.adapt_datetimefield_value(timezone.now()),
        rate.index,
        rate.index,
        conversation_id,
        actor.tenant_id,
        ConversationStatus.CLOSED.value,
    ]
    if isinstance(actor, VisitorActor):
        params += [actor.visitor_id, actor.widget_id]
    else:
        params += [actor.user.pk, actor.user.pk]
    return [*params, rate.index, rate.limit]


# Message columns the fast statement takes from the conversation row it updated, not from parameters.
_FROM_CONVERSATION = {"tenant": "c_tenant", "conversation": "c_id", "seq": "c_seq", "channel": "c_channel"}


@functools.cache
def _post_fast_sql(vendor: str, visitor: bool) -> tuple[str, tuple[str, ...]]:
    """PostgreSQL: dedupe, authorise, take the seq and insert, as ONE statement; and its parameter fields.

    `WITH taken AS (UPDATE conversation … WHERE <access> AND no message has this client_id RETURNING …)
    INSERT INTO message (…) SELECT … FROM taken RETURNING id, seq, channel`. Nothing is inserted when the
    conversation is not writable by this actor, is closed, or already holds the client_id. One statement
    is atomic on its own, so a resend racing its original fails whole on the client_id constraint and
    takes no seq. Columns come from Message's concrete fields, so a new field is included by itself; each
    parameter is cast to its column's type.
    """
    qn = connection.ops.quote_name
    update, where = _take_seq_parts(visitor)
    column = _quoted_column
    table = qn(Message._meta.db_table)
    conversation_table = qn(Conversation._meta.db_table)
    returning = ", ".join(
        f"{conversation_table}.{column(Conversation, name)} AS {alias}"
        for name, alias in (
            ("id", "c_id"),
            ("tenant", "c_tenant"),
            ("last_seq", "c_seq"),
            ("channel", "c_channel"),
            ("status", "c_status"),
        )
    )
    columns: list[str] = []
    values: list[str] = []
    parameter_fields: list[str] = []
    for field in Message._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(column(Message, field.name))
        if field.name in _FROM_CONVERSATION:
            values.append(f"taken.{_FROM_CONVERSATION[field.name]}")
        else:
            values.append(f"CAST(%s AS {field.cast_db_type(connection)})")
            parameter_fields.append(field.name)
    sql = (
        f"WITH taken AS ({update} WHERE {where} AND NOT EXISTS (SELECT 1 FROM {table}"  # noqa: S608 (names from _meta)
        f" WHERE {table}.{column(Message, 'conversation')} = %s AND {table}.{column(Message, 'client_id')} = %s)"
        f" RETURNING {returning})"
        f", stored AS (INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM taken"
        f" RETURNING {table}.{column(Message, 'id')} AS m_id, {table}.{column(Message, 'seq')} AS m_seq,"
        f" {table}.{column(Message, 'channel')} AS m_channel)"
        # The conversation's status too: a visitor's first words in a waiting conversation are announced.
        f" SELECT stored.m_id, stored.m_seq, stored.m_channel, taken.c_status FROM stored, taken"
    )
    return sql, tuple(parameter_fields)


def _execute_prepared(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Runs the statement every message runs as a prepared statement with separate parameters; its one row.

    Django's cursors quote every parameter into the SQL text on the client and never prepare (Django sets
    psycopg's prepare_threshold to None). Here psycopg sends the parameters apart (less Python per call)
    and prepares the statement once per connection, so PostgreSQL stops parsing and planning it. Errors
    become django.db errors and the statement is logged where queries are, as with Django's cursors.
    A pooler in front of PostgreSQL must then run in session mode (transaction mode drops prepared
    statements between transactions).
    """
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    cursor_class: Any = ServerBindingCursor
    with cursor_class(connection.connection) as cursor, connection.wrap_database_errors:
        if connection.queries_logged:
            debug: Any = connection.make_debug_cursor(cursor)
            with debug.debug_sql(sql, params):
                cursor.execute(sql, params, prepare=True)
        else:
            cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def _post_fast(
    *, actor: Actor, conversation_id: int, text: str, client_id: str, private: bool
) -> tuple[Message, str] | None:
    """The new message and the conversation's status, stored in one round trip; None when the full path must
    decide (see _post_fast_sql)."""
    sql, parameter_fields = _post_fast_sql(connection.vendor, isinstance(actor, VisitorActor))
    message = Message(
        tenant_id=actor.tenant_id, conversation_id=conversation_id, body=text, client_id=client_id, is_private=private
    )
    if isinstance(actor, VisitorActor):
        message.sender_kind = SenderKind.VISITOR
    else:
        message.sender_kind = SenderKind.AGENT
        message.sender_user = actor.user
    params = [*_take_seq_params(actor, conversation_id, _rate_window()), conversation_id, client_id]
    for name in parameter_fields:
        field: Any = Message._meta.get_field(name)
        # pre_save fills auto_now_add (created_at) on the instance, as Model.save would.
        params.append(field.get_db_prep_save(field.pre_save(message, True), connection))
    try:
        row = _execute_prepared(sql, params)
    except IntegrityError:
        return None  # a resend racing its original: the full path finds the stored one
    if row is None:
        return None
    message.pk, message.seq, message.channel = int(row[0]), int(row[1]), str(row[2])
    message._state.adding = False
    message._state.db = connection.alias
    return message, str(row[3])


def _take_seq(actor: Actor, conversation_id: int, rate: _RateWindow) -> tuple[int, str, str] | None:
    """(seq, channel, status) for a new message of a writable, not closed conversation within its rate; else None."""
    with connection.cursor() as cursor:
        cursor.execute(
            _take_seq_sql(connection.vendor, isinstance(actor, VisitorActor)),
            _take_seq_params(actor, conversation_id, rate),
        )
        rows = cursor.fetchall()
    return (int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


def message_post(
    *,
    actor: Actor,
    conversation_id: int,
    body: Any,
    client_id: Any,
    private: bool = False,
    attachment_ids: Sequence[int] = (),
) -> PostResult:
    """Stores a message with the conversation's next seq, once per client_id, and announces it after commit.

    On PostgreSQL outside a caller's transaction, a text message is one statement (_post_fast_sql), which
    also counts the rate window. Everything else, and every case that statement declines (a resend, a
    closed or foreign conversation, the rate used up, a lost race), takes the full path: the dedupe SELECT, then the
    UPDATE … RETURNING that authorises and takes the seq (docs/protocol.md §2) and the INSERT in one
    transaction, with exact errors.
    """
    client_id = _clean_client_id(client_id)
    if not isinstance(attachment_ids, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in attachment_ids
    ):
        raise ApplicationError("invalid", "attachment_ids is a list of ids.", {"attachment_ids": ["Expected ids."]})
    if private and isinstance(actor, VisitorActor):
        raise ApplicationError("invalid", "Only agents write private notes.", {"private": ["Not allowed."]})
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound("conversation")
    if not attachment_ids and connection.vendor == "postgresql" and not connection.in_atomic_block:
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
    body: Any,
    client_id: str,
    private: bool,
    attachment_ids: Sequence[int],
) -> Message:
    rate = _rate_window()
    taken = _take_seq(actor, conversation_id, rate)
    if taken is None:
        # Not writable, not found, closed or over the rate: the full check (under the row lock) says which.
        conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
        if conversation.status == ConversationStatus.CLOSED:
            raise ApplicationError("conversation_closed", "This conversation is closed.", status=409)
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
    message = Message.objects.create(
        tenant_id=actor.tenant_id, conversation_id=conversation_id, seq=seq, channel=channel, **fields
    )
    if attachments:
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=message)
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
    conversation = Conversation.objects.select_related("widget").get(pk=message.conversation_id)
    queue = conversation_queue(conversation)
    publish_on_commit(
        group=tenant_agents_group(message.tenant_id),
        event={
            "type": "waiting.preview",
            "conversation_id": message.conversation_id,
            "preview": conversation_preview(conversation),
            "queue_id": queue["id"] if queue else None,
        },
    )


@transaction.atomic
def conversation_mark_read(*, actor: Actor, conversation_id: int, seq: Any) -> int:
    """Moves this side's "seen up to" marker forward (never back); returns the marker."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
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
        return seq
    return max(seq, getattr(conversation, field))


def conversation_updated_publish(conversation: Conversation, *, agents_only: bool) -> None:
    """Announces the conversation's state with a new version, after commit.

    The version is taken by an UPDATE, which holds the row's lock to the end of the transaction: two changes
    in two processes get their versions in commit order, whichever event Redis delivers first.
    """
    Conversation.objects.filter(pk=conversation.pk).update(state_version=F("state_version") + 1)
    conversation.refresh_from_db()
    group = (
        conversation_agents_group(conversation.tenant_id, conversation.pk)
        if agents_only
        else conversation_group(conversation.tenant_id, conversation.pk)
    )
    publish_on_commit(group=group, event=events.conversation_updated(conversation))


@transaction.atomic
def conversation_mark_important(*, actor: AgentActor, conversation_id: int, important: Any) -> Conversation:
    if not isinstance(important, bool):
        raise ApplicationError("invalid", "important is true or false.", {"important": ["Expected a boolean."]})
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    if conversation.important != important:
        conversation.important = important
        conversation.save(update_fields=["important"])
        conversation_updated_publish(conversation, agents_only=True)
    return conversation


def _disposition_for(tenant_id: int, disposition_id: Any) -> Disposition:
    if not isinstance(disposition_id, int) or isinstance(disposition_id, bool):
        raise ApplicationError("invalid_disposition", "Choose a status.", {"disposition_id": ["Expected an id."]})
    disposition = Disposition.objects.for_tenant(tenant_id).filter(pk=disposition_id, is_active=True).first()
    if disposition is None:
        raise ApplicationError(
            "invalid_disposition", "No such status.", {"disposition_id": ["Not an active status of yours."]}
        )
    return disposition


@transaction.atomic
def conversation_set_disposition(*, actor: AgentActor, conversation_id: int, disposition_id: Any) -> Conversation:
    """The outcome the agent picks; allowed after a close too (the visitor may have ended the chat first)."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    disposition = None if disposition_id is None else _disposition_for(conversation.tenant_id, disposition_id)
    new_id = disposition.pk if disposition is not None else None
    if conversation.disposition_id != new_id:
        if new_id is None and conversation.status == ConversationStatus.CLOSED:
            raise ApplicationError("disposition_required", "A closed conversation keeps its status.")
        conversation.disposition = disposition
        conversation.save(update_fields=["disposition"])
        conversation_updated_publish(conversation, agents_only=True)
    return conversation


@dataclass(frozen=True)
class CloseResult:
    conversation: Conversation
    closed_now: bool
    previous_status: str


@transaction.atomic
def conversation_close(*, actor: Actor, conversation_id: int, disposition_id: Any = None) -> CloseResult:
    """Closes once (a second close is a no-op); agents must have picked a disposition first."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    previous = conversation.status
    if conversation.status == ConversationStatus.CLOSED:
        return CloseResult(conversation=conversation, closed_now=False, previous_status=previous)
    data: dict[str, Any]
    if isinstance(actor, AgentActor):
        if disposition_id is not None:
            conversation.disposition = _disposition_for(conversation.tenant_id, disposition_id)
        if conversation.disposition_id is None:
            raise ApplicationError(
                "disposition_required",
                "Pick a status before closing.",
                {"disposition_id": ["Choose a status first."]},
            )
        data = {"by": "agent", "agent_name": events.agent_public_name(actor.user)}
        body = f"{data['agent_name']} closed the chat."
    else:
        data = {"by": "visitor"}
        body = "The visitor ended the chat."
    conversation.status = ConversationStatus.CLOSED
    conversation.closed_at = timezone.now()
    conversation.save(update_fields=["status", "closed_at", "disposition"])
    system_notice_post(conversation=conversation, event="conversation.closed", body=body, event_data=data)
    conversation_updated_publish(conversation, agents_only=False)
    return CloseResult(conversation=conversation, closed_now=True, previous_status=previous)


# --- attachments ---------------------------------------------------------------------------------------


def sniff_content_type(head: bytes) -> str | None:
    """The real type of images and PDFs by their magic bytes; None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _looks_like_markup(head: bytes) -> bool:
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return sample.startswith(b"<") and any(hint in sample for hint in MARKUP_HINTS)


def _is_utf8_text(upload: UploadedFile) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    upload.seek(0)
    try:
        for chunk in upload.chunks():
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        upload.seek(0)
    return True


def _clean_filename(name: str) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*').strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 190 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name or "file"


def upload_content_type(*, upload: UploadedFile, allowed: Sequence[str]) -> str:
    """The type an upload really has, if the widget allows it; refuses markup and content/claim mismatches."""
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    allowed_types = {str(t).lower() for t in allowed} - NEVER_ALLOWED_TYPES
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    sniffed = sniff_content_type(head)
    if sniffed is not None:
        if sniffed not in allowed_types:
            raise ApplicationError("file_type_not_allowed", "This type of file is not accepted here.", status=415)
        return sniffed
    if declared in MAGIC_TYPES:
        raise ApplicationError(
            "file_type_mismatch", f"The file's content is not {declared}.", {"file": ["Content mismatch."]}, status=415
        )
    if declared in NEVER_ALLOWED_TYPES or _looks_like_markup(head):
        raise ApplicationError("file_type_not_allowed", "Web pages and SVG files are never accepted.", status=415)
    if declared in ("text/plain", "", "application/octet-stream") and "text/plain" in allowed_types:
        if _is_utf8_text(upload):
            return "text/plain"
        if declared == "text/plain":
            raise ApplicationError(
                "file_type_mismatch", "A text file must be UTF-8 text.", {"file": ["Not UTF-8 text."]}, status=415
            )
    if declared and declared in allowed_types and not declared.startswith("text/"):
        return declared  # unknown to the sniffer: stored as claimed, always served as octet-stream
    raise ApplicationError("file_type_not_allowed", "This type of file is not accepted here.", status=415)


# What a file name's extension claims, for the types the sniffer knows (a fixed table: the mimetypes module
# reads the machine's /etc/mime.types); extensions a browser would open as a page or script are never taken.
UPLOAD_EXTENSION_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "jfif": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "txt": "text/plain",
}
UPLOAD_MARKUP_EXTENSIONS = frozenset({"htm", "html", "shtml", "xht", "xhtml", "svg", "svgz", "xml", "xsl", "js", "mjs"})
UPLOAD_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
}


def _upload_claims_check(*, filename: str, declared: str, content_type: str) -> None:
    """Refuses an upload whose name or declared type says something else than its content (docs/protocol.md §6).

    `content_type` is what upload_content_type found (sniffed for images and PDF, UTF-8 for text); the browser
    declares a type from the file's extension, so a PNG named `x.pdf` contradicts itself twice.
    """
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    if extension in UPLOAD_MARKUP_EXTENSIONS:
        raise ApplicationError(
            "file_type_not_allowed", "Web pages, SVG and script files are never accepted.", status=415
        )
    declared = declared.split(";")[0].strip().lower()
    declared = UPLOAD_TYPE_ALIASES.get(declared, declared)
    claims = {
        "name": UPLOAD_EXTENSION_TYPES.get(extension),
        "type": None if declared in ("", "application/octet-stream") else declared,
    }
    for what, claimed in claims.items():
        if claimed is not None and claimed != content_type:
            message = f"The file's content is {content_type}, but its {what} says {claimed}."
            raise ApplicationError("file_type_mismatch", message, {"file": [message]}, status=415)


@transaction.atomic
def attachment_upload(*, actor: Actor, conversation_id: int, upload: UploadedFile) -> Attachment:
    """Stores an upload under MEDIA_ROOT with a random name, within the widget's size and type limits.

    Content, name and declared type must agree (`file_type_mismatch` otherwise): what is stored and served
    is what the bytes are, under a name that says the same.
    """
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    if conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("conversation_closed", "This conversation is closed.", status=409)
    widget = conversation.widget if conversation.widget_id else None
    max_bytes = min(widget.max_upload_bytes if widget else 10 * 1024 * 1024, UPLOAD_ABSOLUTE_MAX)
    allowed = list(widget.allowed_file_types) if widget else list(DEFAULT_FILE_TYPES)
    size = upload.size or 0
    if size <= 0:
        raise ApplicationError("invalid", "The file is empty.", {"file": ["Empty file."]})
    if size > max_bytes:
        raise ApplicationError(
            "file_too_large", f"Files are at most {max_bytes // 1024} KiB here.", {"file": ["Too large."]}, status=413
        )
    content_type = upload_content_type(upload=upload, allowed=allowed)
    filename = _clean_filename(upload.name or "")
    _upload_claims_check(filename=filename, declared=upload.content_type or "", content_type=content_type)
    attachment = Attachment(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        filename=filename,
        content_type=content_type,
        size=size,
        uploaded_by_visitor=isinstance(actor, VisitorActor),
        uploaded_by=actor.user if isinstance(actor, AgentActor) else None,
    )
    # upload_to picks a random name: the visitor's file name never reaches the disk.
    attachment.file.save("upload", upload, save=False)
    attachment.save()
    return attachment


def attachment_served_type(attachment: Attachment) -> str:
    if attachment.content_type in SAFE_SERVED_TYPES:
        return attachment.content_type
    if attachment.content_type == "text/plain":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
