"""message_post's one-statement path (PostgreSQL, outside a caller's transaction): what the sockets use.

The rest of the suite runs inside a test transaction, where message_post takes the full path; these tests
commit for real, so they exercise the single statement and check it keeps every promise of the full one.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, ConversationStatus, Message
from chat.selectors import VisitorActor
from chat.services import message_post
from contactcenter.errors import ApplicationError

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def post(actor, conversation, body="hi", client_id=None, **kwargs):
    return message_post(
        actor=actor, conversation_id=conversation.pk, body=body, client_id=client_id or f"c-{body[:20]}", **kwargs
    )


def stored_seqs(conversation):
    return list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", flat=True))


def test_a_new_message_is_one_statement_and_the_resend_is_acked_with_it(visitor, assigned, agent_actor):
    with CaptureQueriesContext(connection) as queries:
        first = post(visitor, assigned, body="from the visitor", client_id="v-1")
    assert len(queries) == 1 and queries[0]["sql"].startswith("WITH taken AS (UPDATE")
    with CaptureQueriesContext(connection) as queries:
        reply = post(agent_actor, assigned, body="from the agent", client_id="a-1")
    assert len(queries) == 1
    again = post(visitor, assigned, body="edited on resend", client_id="v-1")
    assert (first.created, reply.created, again.created) == (True, True, False)
    assert again.message.pk == first.message.pk and again.message.body == "from the visitor"
    assert stored_seqs(assigned) == [1, 2, 3]  # the agent's accept stored seq 1 ("joined")
    assert (first.message.seq, reply.message.seq) == (2, 3)


def test_the_statement_is_prepared_once_per_connection(visitor, conversation):
    for i in range(3):
        post(visitor, conversation, body=f"m{i}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH taken AS (UPDATE%%'")
        assert cursor.fetchone() == (1,)


def test_the_statement_stores_what_the_full_path_stores(visitor, assigned, agent_actor):
    fast = post(agent_actor, assigned, body="same", client_id="fast").message
    with transaction.atomic():  # inside a transaction message_post takes the full path
        full = post(agent_actor, assigned, body="same", client_id="full").message
    rows = {m.client_id: m for m in Message.objects.filter(client_id__in=["fast", "full"])}
    ignore = ("id", "seq", "client_id", "created_at")
    assert {k: v for k, v in model_to_dict(rows["fast"]).items() if k not in ignore} == {
        k: v for k, v in model_to_dict(rows["full"]).items() if k not in ignore
    }
    # The returned instance is what was stored (the ack and the live event are built from it).
    assert (fast.pk, fast.seq, fast.channel, fast.created_at) == (
        rows["fast"].pk,
        rows["fast"].seq,
        rows["fast"].channel,
        rows["fast"].created_at,
    )
    assert rows["fast"].sender_user_id == agent_actor.user.pk and full.sender_user_id == agent_actor.user.pk


def test_strangers_closed_conversations_and_bad_input_get_the_full_paths_errors_and_take_no_seq(
    visitor, conversation, widget, agent_actor, settings
):
    stranger = VisitorActor(tenant_id=visitor.tenant_id, widget_id=widget.pk, visitor_id="someone-else")
    cases = [
        (lambda: post(stranger, conversation, body="hello"), "not_found"),
        (lambda: post(agent_actor, conversation, body="hello"), {"not_found", "permission_denied"}),
        (lambda: post(visitor, conversation, body="   "), "message_empty"),
        (lambda: post(visitor, conversation, body="x" * (settings.MESSAGE_MAX_CHARS + 1)), "message_too_long"),
    ]
    for call, expected in cases:
        with pytest.raises(ApplicationError) as error:
            call()
        assert error.value.code in ({expected} if isinstance(expected, str) else expected)
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.CLOSED)
    for body in ("hello", "   "):  # closed comes before the body's own errors, as on the full path
        with pytest.raises(ApplicationError) as error:
            post(visitor, conversation, body=body)
        assert error.value.code == "conversation_closed"
    conversation.refresh_from_db()
    assert conversation.last_seq == len(stored_seqs(conversation)) == 0


def test_the_rate_limit_refuses_new_messages_but_a_resend_still_acks(visitor, conversation, settings):
    settings.MESSAGE_RATE_COUNT = 3
    settings.MESSAGE_RATE_WINDOW_SECONDS = 60
    for i in range(3):
        post(visitor, conversation, body=f"m{i}")
    with pytest.raises(ApplicationError) as error:
        post(visitor, conversation, body="one too many")
    assert error.value.code == "rate_limited" and 1 <= error.value.retry_after <= 60
    assert post(visitor, conversation, body="m0").created is False
    assert stored_seqs(conversation) == [1, 2, 3]


def test_each_side_has_its_own_window_and_the_count_restarts_with_the_next(
    visitor, assigned, agent_actor, settings, monkeypatch
):
    from chat.services import message_sql

    settings.MESSAGE_RATE_COUNT = 2
    settings.MESSAGE_RATE_WINDOW_SECONDS = 60
    now = 60 * 29_000_000 + 10.0
    monkeypatch.setattr(message_sql.time, "time", lambda: now)
    for i in range(2):
        post(visitor, assigned, body=f"v{i}")
    with pytest.raises(ApplicationError) as error:
        post(visitor, assigned, body="v2")
    assert (error.value.code, error.value.retry_after) == ("rate_limited", 50)
    assert post(agent_actor, assigned, body="the agents' side is counted apart").created
    now += 60
    assert post(visitor, assigned, body="v2").created  # the next window
    assigned.refresh_from_db()
    assert (assigned.visitor_rate_window, assigned.visitor_rate_count) == (int(now // 60), 1)


def test_another_visitor_posting_to_a_conversation_cannot_spend_its_visitors_allowance(
    visitor, conversation, widget, settings
):
    settings.MESSAGE_RATE_COUNT = 2
    settings.MESSAGE_RATE_WINDOW_SECONDS = 60
    stranger = VisitorActor(tenant_id=visitor.tenant_id, widget_id=widget.pk, visitor_id="someone-else")
    for i in range(5):
        with pytest.raises(ApplicationError):
            post(stranger, conversation, body=f"spam{i}")
    assert post(visitor, conversation, body="still heard").created


def test_resends_racing_each_other_store_one_message_and_leave_no_seq_hole(visitor, conversation):
    """Eight threads send the same client_id at once: one statement inserts, the others either see it or
    fail whole on the client_id constraint (taking no seq) and are answered with the stored message."""
    start = threading.Barrier(8)
    results = []
    errors = []

    def resend():
        try:
            start.wait(10)
            results.append(post(visitor, conversation, body="once", client_id="race"))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=resend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert len({r.message.pk for r in results}) == 1
    after = post(visitor, conversation, body="next")
    assert stored_seqs(conversation) == [1, 2] and after.message.seq == 2
