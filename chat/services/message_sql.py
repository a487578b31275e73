"""The message fast path's hand-written statements: authorise, rate-count, take the next seq and insert, in one trip."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection
from django.utils import timezone

from chat.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    SenderKind,
)
from chat.selectors import (
    Actor,
    VisitorActor,
)


def message_rate_limit() -> tuple[int, int]:
    """(messages, seconds) each side of a conversation (its visitor; its agents) may post; generous for people,
    not for scripts."""
    return settings.MESSAGE_RATE_COUNT, settings.MESSAGE_RATE_WINDOW_SECONDS


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
        # A visitor writes only to a web chat: one that moved to SMS, WhatsApp or email goes on there.
        where += [
            f"{col('visitor_id')} = %s",
            f"{col('visitor_id')} <> ''",
            f"{col('widget_id')} = %s",
            f"{col('channel')} = %s",
        ]
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
        params += [actor.visitor_id, actor.widget_id, Channel.WEB.value]
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
    conversation is not writable by this actor, is closed, is not on the web (its messages go out through a
    provider: the full path writes their delivery), or already holds the client_id. One statement
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
    on_the_web = f"{conversation_table}.{column(Conversation, 'channel')} = %s"
    sql = (
        f"WITH taken AS ({update} WHERE {where} AND {on_the_web} AND NOT EXISTS (SELECT 1 FROM {table}"  # noqa: S608 (names from _meta)
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
    params = [*_take_seq_params(actor, conversation_id, _rate_window()), Channel.WEB.value, conversation_id, client_id]
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
