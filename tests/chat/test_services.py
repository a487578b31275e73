"""Live chat services on the test database: seq, dedupe, notes, surveys, history isolation, close, uploads, access."""

from __future__ import annotations

import asyncio
import io
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections, transaction
from django.utils import timezone

from agents.models import AgentProfile, Presence
from agents.services import agent_socket_closed, agent_socket_opened, presence_sweep
from chat.models import Attachment, Conversation, ConversationStatus, Message, SenderKind, Widget
from chat.selectors import (
    VisitorActor,
    agent_actor_for,
    attachment_get_for,
    conversation_has_history,
    conversation_history,
    message_replay,
)
from chat.services import (
    RateLimited,
    attachment_upload,
    conversation_close,
    conversation_mark_read,
    conversation_set_disposition,
    conversation_start,
    message_post,
    survey_validate,
    widget_delete,
)
from contactcenter.errors import ApplicationError
from contactcenter.models import Contact, ContactIdentity, Role, user_display_name
from contactcenter.ratelimit import Rate, client_ip, rate_parse, ratelimit_hit
from contactcenter.realtime import agent_group, tenant_agents_group
from contactcenter.services import contact_create, contact_identity_add
from queueing.models import Offer, OfferStatus, QueueRoute
from queueing.services import (
    OfflineSweep,
    agent_presence_change,
    agents_offline_sweep,
    conversation_accept,
    conversation_end,
    conversation_request,
    offer_reject,
    waiting_list,
)
from tests.factories import (
    ConversationFactory,
    DispositionFactory,
    MembershipFactory,
    QueueFactory,
    QueueMemberFactory,
    QueueRouteFactory,
    WidgetFactory,
)

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"


def post(actor, conversation, body="hi", client_id=None, **kwargs):
    return message_post(
        actor=actor,
        conversation_id=conversation.pk,
        body=body,
        client_id=client_id or f"c-{body[:20]}-{len(body)}",
        **kwargs,
    )


# --- seq and dedupe ------------------------------------------------------------------------------------


def test_messages_take_consecutive_seqs_and_move_last_seq(visitor, conversation):
    seqs = [post(visitor, conversation, body=f"m{i}").message.seq for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    conversation.refresh_from_db()
    assert conversation.last_seq == 5
    assert conversation.last_message_at is not None


def test_a_resend_with_the_same_client_id_returns_the_stored_message_and_announces_nothing(
    visitor, conversation, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post(visitor, conversation, body="hello", client_id="uuid-1")
    with django_capture_on_commit_callbacks(execute=True):
        again = post(visitor, conversation, body="hello (edited on resend)", client_id="uuid-1")
    assert first.created is True
    assert again.created is False
    assert again.message.pk == first.message.pk
    assert again.message.body == "hello"
    assert Message.objects.filter(conversation=conversation).count() == 1
    # The first message of a waiting chat also gives its offers their preview; the resend adds nothing.
    assert [event["type"] for _, event in published] == ["message.new", "waiting.preview"]


def test_a_client_id_of_another_sender_is_refused(visitor, assigned, agent_actor):
    post(visitor, assigned, body="mine", client_id="same")
    with pytest.raises(ApplicationError) as error:
        post(agent_actor, assigned, body="theirs", client_id="same")
    assert error.value.code == "duplicate_client_id"


def test_message_validation_errors(visitor, conversation, settings):
    cases = [
        ({"body": "   "}, "message_empty"),
        ({"body": "x" * (settings.MESSAGE_MAX_CHARS + 1)}, "message_too_long"),
        ({"body": "ok", "client_id": ""}, "client_id_required"),
        ({"body": "ok", "client_id": "x" * 65}, "client_id_required"),
        ({"body": 12}, "invalid"),
        ({"body": "ok", "attachment_ids": [999999]}, "invalid_attachment"),
        ({"body": "note", "private": True}, "invalid"),
    ]
    for kwargs, code in cases:
        kwargs.setdefault("client_id", "cid")
        with pytest.raises(ApplicationError) as error:
            message_post(actor=visitor, conversation_id=conversation.pk, **kwargs)
        assert error.value.code == code, kwargs
    assert not Message.objects.filter(conversation=conversation).exists()
    # The maximum itself is fine.
    assert post(visitor, conversation, body="x" * settings.MESSAGE_MAX_CHARS).created


def test_the_rate_limit_refuses_with_retry_after_and_a_resend_still_acks(visitor, conversation, settings):
    settings.MESSAGE_RATE_COUNT = 3
    settings.MESSAGE_RATE_WINDOW_SECONDS = 60
    for i in range(3):
        post(visitor, conversation, body=f"m{i}")
    with pytest.raises(ApplicationError) as error:
        post(visitor, conversation, body="one too many")
    assert error.value.code == "rate_limited"
    assert 1 <= error.value.retry_after <= 60
    # Dedupe comes first: resending a stored message is never rate limited.
    assert post(visitor, conversation, body="m0").created is False


def test_private_notes_go_to_the_agents_group_and_are_never_replayed_to_the_visitor(
    visitor, assigned, agent_actor, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(visitor, assigned, body="question")
        note = post(agent_actor, assigned, body="internal", private=True).message
        post(agent_actor, assigned, body="answer")
    tenant_id, conversation_id = assigned.tenant_id, assigned.pk
    groups = {event["message"]["seq"]: group for group, event in published if event["type"] == "message.new"}
    assert groups[note.seq] == f"t{tenant_id}.conv.{conversation_id}.agents"
    assert all(group == f"t{tenant_id}.conv.{conversation_id}" for seq, group in groups.items() if seq != note.seq)

    for_visitor = message_replay(
        tenant_id=tenant_id, conversation_id=conversation_id, after_seq=0, include_private=False
    )
    for_agent = message_replay(tenant_id=tenant_id, conversation_id=conversation_id, after_seq=0, include_private=True)
    assert note.seq not in [m["seq"] for m in for_visitor.messages]
    assert note.seq in [m["seq"] for m in for_agent.messages]
    # The visitor's position still passes the note: the next resume does not ask for it again.
    assigned.refresh_from_db()
    assert for_visitor.upto == for_agent.upto == assigned.last_seq == 4  # agent.joined + 3 messages


def test_replay_comes_in_batches_that_cover_every_seq_once(visitor, conversation):
    for i in range(7):
        post(visitor, conversation, body=f"m{i}")
    seen: list[int] = []
    cursor = 0
    while True:
        batch = message_replay(
            tenant_id=conversation.tenant_id,
            conversation_id=conversation.pk,
            after_seq=cursor,
            include_private=False,
            limit=3,
        )
        seen += [m["seq"] for m in batch.messages]
        cursor = batch.upto
        if batch.complete:
            break
    assert seen == list(range(1, 8))


# --- access --------------------------------------------------------------------------------------------


def test_a_visitor_cannot_touch_another_visitors_or_widgets_conversation(visitor, conversation, widget, tenant):
    strangers = [
        VisitorActor(tenant_id=visitor.tenant_id, widget_id=visitor.widget_id, visitor_id="someone-else"),
        VisitorActor(tenant_id=visitor.tenant_id, widget_id=visitor.widget_id + 1000, visitor_id=visitor.visitor_id),
        VisitorActor(tenant_id=visitor.tenant_id + 1000, widget_id=visitor.widget_id, visitor_id=visitor.visitor_id),
    ]
    for stranger in strangers:
        with pytest.raises(ApplicationError) as error:
            post(stranger, conversation, body="let me in")
        assert error.value.code == "not_found"


def test_agents_write_only_where_assigned_and_supervisors_only_read(assigned, tenant, other_tenant):
    colleague = agent_actor_for(MembershipFactory(tenant=tenant, role=Role.AGENT).user)
    supervisor = agent_actor_for(MembershipFactory(tenant=tenant, role=Role.SUPERVISOR).user)
    foreigner = agent_actor_for(MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user)
    with pytest.raises(ApplicationError) as error:
        post(colleague, assigned)
    assert error.value.code == "not_found"
    with pytest.raises(ApplicationError) as error:
        post(supervisor, assigned)
    assert error.value.code == "forbidden"
    with pytest.raises(ApplicationError) as error:
        post(foreigner, assigned)
    assert error.value.code == "not_found"


def test_closed_conversations_refuse_messages(visitor, conversation):
    conversation_close(actor=visitor, conversation_id=conversation.pk)
    with pytest.raises(ApplicationError) as error:
        post(visitor, conversation, body="late")
    assert error.value.code == "conversation_closed"


def test_read_markers_are_per_side_and_only_move_forward(visitor, assigned, agent_actor):
    for i in range(3):
        post(visitor, assigned, body=f"m{i}")
    assert conversation_mark_read(actor=visitor, conversation_id=assigned.pk, seq=3) == 3
    assert conversation_mark_read(actor=visitor, conversation_id=assigned.pk, seq=1) == 3
    assert conversation_mark_read(actor=agent_actor, conversation_id=assigned.pk, seq=999) == 4  # capped at last_seq
    assigned.refresh_from_db()
    assert (assigned.visitor_read_seq, assigned.agent_read_seq) == (3, 4)


# --- survey, contacts and history ------------------------------------------------------------------------


def test_survey_answers_are_validated_against_the_widgets_fields(widget):
    with pytest.raises(ApplicationError) as error:
        survey_validate(widget=widget, answers={"email": "not-an-email", "phone": "12"})
    assert error.value.code == "invalid"
    assert set(error.value.fields) == {"name", "email", "phone"}

    result = survey_validate(
        widget=widget,
        answers={"name": " Jane ", "email": "Jane@Example.org", "phone": "+44 20 7946 0958", "unknown": "ignored"},
    )
    assert result.name == "Jane"
    assert ("email", "jane@example.org") in result.identities
    assert ("phone", "+442079460958") in result.identities
    assert [a["key"] for a in result.answers] == ["name", "email", "phone"]


def test_a_survey_adds_unverified_identities_and_the_same_visitor_keeps_its_contact(widget):
    answers = {"name": "Jane", "email": "jane@example.org", "phone": "+14155552671"}
    first = conversation_start(widget=widget, visitor_id="v1", answers=answers).conversation
    second = conversation_start(widget=widget, visitor_id="v1", answers=answers).conversation
    other = conversation_start(widget=widget, visitor_id="v2", answers=answers).conversation
    assert first.contact_id == second.contact_id != other.contact_id  # tests/chat/test_returning_visitor.py
    identities = ContactIdentity.objects.filter(contact=first.contact)
    assert {(i.kind, i.value, i.verified) for i in identities} == {
        ("email", "jane@example.org", False),
        ("phone", "+14155552671", False),
        ("web", "v1", True),
    }
    assert first.survey[0] == {"key": "name", "label": "Your name", "value": "Jane"}


def test_typing_someone_elses_email_never_shows_their_history(tenant, widget, agent_actor, agent):
    # Jane's real history, tied to her verified address.
    jane = contact_create(tenant=tenant, name="Jane")
    contact_identity_add(contact=jane, kind="email", value="jane@example.org", verified=True)
    old = ConversationFactory(tenant=tenant, contact=jane, widget=widget, status=ConversationStatus.CLOSED)
    Message.objects.create(tenant=tenant, conversation=old, seq=1, sender_kind=SenderKind.VISITOR, body="my secret")
    jane_now = ConversationFactory(tenant=tenant, contact=jane, widget=widget, assignee=agent)

    # Someone else types Jane's address into the survey.
    impostor = conversation_start(
        widget=widget, visitor_id="imp", answers={"name": "Jane", "email": "jane@example.org"}
    ).conversation
    impostor.assignee = agent
    impostor.save()

    assert conversation_has_history(impostor) is False
    assert conversation_history(actor=agent_actor, conversation_id=impostor.pk) == {
        "conversations": [],
        "has_more": False,
    }
    # The real Jane's new conversation does see it.
    assert conversation_has_history(jane_now) is True
    history = conversation_history(actor=agent_actor, conversation_id=jane_now.pk)
    assert [c["id"] for c in history["conversations"]] == [old.pk]
    assert history["conversations"][0]["messages"][0]["body"] == "my secret"


# --- a start is idempotent by its client_id ---------------------------------------------------------------


def test_a_retried_start_returns_the_first_conversation_and_creates_nothing(widget):
    answers = {"name": "Jane", "email": "jane@example.org"}
    first = conversation_start(widget=widget, visitor_id=None, answers=answers, message="Hi", client_id="start-1")
    # The answer to the first try was lost: the client retries, still without a token.
    again = conversation_start(widget=widget, visitor_id=None, answers=answers, message="Hi", client_id="start-1")
    assert (first.created, again.created) == (True, False)
    assert again.conversation.pk == first.conversation.pk
    assert again.conversation.visitor_id == first.conversation.visitor_id  # the same visitor gets the token
    assert (Conversation.objects.count(), Contact.objects.count()) == (1, 1)
    assert list(Message.objects.values_list("body", "client_id")) == [("Hi", "start-1")]

    # Its visitor retrying with their token is the same start too; another client_id is another start.
    same = conversation_start(widget=widget, visitor_id=first.conversation.visitor_id, client_id="start-1")
    assert same.conversation.pk == first.conversation.pk and same.created is False
    other = conversation_start(widget=widget, visitor_id=None, answers=answers, client_id="start-2")
    assert other.created is True and other.conversation.pk != first.conversation.pk
    # The key is per widget.
    elsewhere = conversation_start(
        widget=WidgetFactory(tenant=widget.tenant), visitor_id=None, answers=answers, client_id="start-1"
    )
    assert elsewhere.created is True


def test_a_start_client_id_never_lets_a_second_visitor_in_and_is_validated(widget):
    first = conversation_start(widget=widget, visitor_id="v-one", answers={"name": "Jane"}, client_id="start-1")
    with pytest.raises(ApplicationError) as error:
        conversation_start(widget=widget, visitor_id="v-two", answers={"name": "Eve"}, client_id="start-1")
    assert (error.value.code, error.value.status) == ("duplicate_client_id", 409)
    for bad in ("", "x" * 65):
        with pytest.raises(ApplicationError) as error:
            conversation_start(widget=widget, visitor_id="v-one", answers={"name": "Jane"}, client_id=bad)
        assert error.value.code == "client_id_required"
    assert list(Conversation.objects.values_list("pk", flat=True)) == [first.conversation.pk]


def test_a_start_client_id_older_than_a_token_starts_afresh(widget):
    old = conversation_start(widget=widget, visitor_id="v-one", answers={"name": "Jane"}, client_id="start-1")
    long_ago = timezone.now() - timedelta(seconds=settings.VISITOR_TOKEN_MAX_AGE + 60)
    Conversation.objects.filter(pk=old.conversation.pk).update(created_at=long_ago)
    new = conversation_start(widget=widget, visitor_id=None, answers={"name": "Joe"}, client_id="start-1")
    assert new.created is True and new.conversation.pk != old.conversation.pk
    old.conversation.refresh_from_db()
    assert (old.conversation.start_client_id, new.conversation.start_client_id) == (None, "start-1")


def test_a_retried_request_is_not_routed_again(widget, queue, online, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = conversation_request(widget=widget, visitor_id=None, answers={"name": "A"}, client_id="start-1")
    assert first.created is True and len(callbacks) == 2  # waiting.added and the offer
    with django_capture_on_commit_callbacks() as callbacks:
        again = conversation_request(widget=widget, visitor_id=None, answers={"name": "A"}, client_id="start-1")
    assert (again.created, again.offline, again.conversation.pk) == (False, False, first.conversation.pk)
    assert callbacks == []
    assert Offer.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_retry_racing_its_first_try_gets_the_same_conversation(widget):
    """The retry's lookup runs before the first try commits: the unique constraint decides."""
    first_inserted, retry_waiting = threading.Event(), threading.Event()
    results = {}

    def first_try():
        try:
            with transaction.atomic():
                results["first"] = conversation_start(
                    widget=widget, visitor_id=None, answers={"name": "Jane"}, message="Hi", client_id="race"
                )
                first_inserted.set()
                retry_waiting.wait(10)  # the retry is now blocked on the uncommitted key
        finally:
            connections.close_all()

    def retry():
        try:
            first_inserted.wait(10)
            threading.Timer(0.5, retry_waiting.set).start()
            results["retry"] = conversation_start(
                widget=widget, visitor_id=None, answers={"name": "Jane"}, message="Hi", client_id="race"
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_try), threading.Thread(target=retry)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert (results["first"].created, results["retry"].created) == (True, False)
    assert results["retry"].conversation.pk == results["first"].conversation.pk
    assert results["retry"].conversation.visitor_id == results["first"].conversation.visitor_id
    assert Conversation.objects.count() == 1 and Contact.objects.count() == 1  # the retry's contact rolled back
    assert Message.objects.count() == 1


# --- session starts are rate limited per address and per widget -------------------------------------------


def test_a_fixed_window_counts_hits_per_key_and_restarts_with_the_next_window():
    rate = Rate(count=3, seconds=60)
    at = 60 * 16_667 + 20.0  # 20 s into a window (windows start at multiples of 60 s)
    assert [ratelimit_hit(scope="t", key="a", rate=rate, now=at + i) for i in range(3)] == [None, None, None]
    assert ratelimit_hit(scope="t", key="a", rate=rate, now=at + 10) == 30  # the window ends in 30 s
    assert ratelimit_hit(scope="t", key="b", rate=rate, now=at + 10) is None  # another key, another count
    assert ratelimit_hit(scope="u", key="a", rate=rate, now=at + 10) is None  # another scope too
    assert ratelimit_hit(scope="t", key="a", rate=rate, now=at + 40) is None  # the next window


@pytest.mark.redis
def test_on_redis_one_round_trip_counts_every_hit_of_concurrent_threads_and_the_key_expires():
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    backend = caches["default"]
    assert isinstance(backend, RedisCache)
    rate = Rate(count=50, seconds=60)
    at = 60 * 16_667 + 20.0
    start = threading.Barrier(8)
    verdicts = []

    def hit():
        start.wait(10)
        verdicts.extend(ratelimit_hit(scope="conc", key="k", rate=rate, now=at) for _ in range(10))

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # 80 hits, none lost: exactly the first 50 pass.
    assert verdicts.count(None) == 50 and len(verdicts) == 80
    key = backend.make_and_validate_key(f"ratelimit:conc:k:{int(at // 60)}")
    client = backend._cache.get_client(key, write=True)
    assert backend.get(f"ratelimit:conc:k:{int(at // 60)}") == 80  # the cache API reads the same count
    assert 0 < client.ttl(key) <= 65


def test_rates_are_read_from_settings_strings():
    assert rate_parse("10/min") == Rate(count=10, seconds=60)
    assert rate_parse(" 120 / minute ") == Rate(count=120, seconds=60)
    assert rate_parse("5/10s") == Rate(count=5, seconds=10)
    assert rate_parse("1000/day") == Rate(count=1000, seconds=86400)
    assert rate_parse("") is None  # off
    for bad in ("10", "ten/min", "10/fortnight", "-1/min", "10/0s"):
        with pytest.raises(ImproperlyConfigured, match="WIDGET_SESSION_RATE"):
            rate_parse(bad, setting="WIDGET_SESSION_RATE")


def test_the_client_address_is_remote_addr_unless_proxies_are_trusted(settings):
    meta = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7, 198.51.100.2"}
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(meta) == "10.0.0.5"  # a header anyone can type is not read
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(meta) == "198.51.100.2"  # what our one proxy appended
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(meta) == "203.0.113.7"  # what our outer proxy appended; 6.6.6.6 is the client's claim
    assert client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}) == "10.0.0.5"  # too short
    assert client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "junk, x"}) == "10.0.0.5"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.7:51234"}) == "203.0.113.7"
    # IPv6 counts by /64: a subscriber usually holds a whole /64 and could rotate through it.
    assert client_ip({"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}) == client_ip({"REMOTE_ADDR": "2001:db8:1:2::99"})
    assert client_ip({"REMOTE_ADDR": "2001:db8:1:2::1"}) == "2001:db8:1:2::/64"
    assert client_ip({"REMOTE_ADDR": "::ffff:203.0.113.7"}) == "203.0.113.7"


def start_from(widget, ip, name="Jane", **kwargs):
    return conversation_start(widget=widget, visitor_id=None, answers={"name": name}, client_ip=ip, **kwargs)


def test_starts_are_limited_per_address_and_widget_then_per_widget(widget, settings):
    settings.WIDGET_SESSION_RATE = "2/min"
    settings.WIDGET_SESSION_RATE_WIDGET = "3/min"
    start_from(widget, "203.0.113.1")
    start_from(widget, "203.0.113.1")
    with pytest.raises(RateLimited) as refused:
        start_from(widget, "203.0.113.1")
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert 1 <= refused.value.retry_after <= 60
    assert "Too many chats started from here" in refused.value.message
    # The refused start did not count for the widget: a second address still has the widget's last start.
    start_from(widget, "203.0.113.2")
    with pytest.raises(RateLimited) as refused:
        start_from(widget, "203.0.113.3")  # a fresh address, but the widget is at 3 this minute
    assert "Too many chats are starting right now" in refused.value.message
    assert Conversation.objects.count() == 3 and Contact.objects.count() == 3
    # Another widget has its own budgets; internal callers (no client_ip) are not limited.
    start_from(WidgetFactory(tenant=widget.tenant, survey_fields=widget.survey_fields), "203.0.113.1")
    conversation_start(widget=widget, visitor_id=None, answers={"name": "Staff"})
    # An empty setting turns that limit off.
    settings.WIDGET_SESSION_RATE_WIDGET = ""
    start_from(widget, "203.0.113.4")


def test_a_retried_start_and_an_invalid_one_are_not_counted(widget, settings):
    settings.WIDGET_SESSION_RATE = "1/min"
    with pytest.raises(ApplicationError) as invalid:
        start_from(widget, "203.0.113.1", name="")
    assert invalid.value.code == "invalid"  # refused for its answers: it made nothing and counts nothing
    first = start_from(widget, "203.0.113.1", client_id="start-1")
    for _ in range(3):  # the answers were lost, the widget retries: always answered, never refused
        again = start_from(widget, "203.0.113.1", client_id="start-1")
        assert (again.created, again.conversation.pk) == (False, first.conversation.pk)
    with pytest.raises(RateLimited):
        start_from(widget, "203.0.113.1", client_id="start-2")
    assert Conversation.objects.count() == 1


# --- routing: request, offers, accept, reject ---------------------------------------------------------------


def test_a_request_is_offered_to_online_members_and_goes_offline_when_none_is(widget, queue, agent):
    offline = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}, message="anyone?")
    assert offline.offline is True
    assert offline.conversation.started_offline is True
    assert not Offer.objects.exists()
    with pytest.raises(ApplicationError) as error:
        conversation_request(widget=widget, visitor_id="v2", answers={"name": "B"})
    assert error.value.code == "offline_message_required"

    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    online = conversation_request(widget=widget, visitor_id="v3", answers={"name": "C"})
    assert online.offline is False
    assert list(Offer.objects.filter(conversation=online.conversation).values_list("agent_id", flat=True)) == [agent.pk]


def test_going_online_offers_the_waiting_conversations_of_ones_queues(widget, queue, agent, agent_actor):
    waiting = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}, message="hello").conversation
    agent_presence_change(actor=agent_actor, presence="online")
    assert Offer.objects.get(agent=agent).conversation == waiting
    agent_presence_change(actor=agent_actor, presence="away")
    assert Offer.objects.get(agent=agent).status == OfferStatus.WITHDRAWN


def test_the_first_accept_wins_and_withdraws_every_other_offer(
    tenant, widget, queue, online, agent_actor, published, django_capture_on_commit_callbacks
):
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.ONLINE)
    with django_capture_on_commit_callbacks(execute=True):
        conversation = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    assert Offer.objects.filter(conversation=conversation).count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        conversation_accept(actor=agent_actor, conversation_id=conversation.pk)
    with pytest.raises(ApplicationError) as error:
        conversation_accept(actor=agent_for(colleague), conversation_id=conversation.pk)
    assert error.value.code == "already_taken"

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (ConversationStatus.OPEN, online.pk)
    statuses = dict(Offer.objects.filter(conversation=conversation).values_list("agent_id", "status"))
    assert statuses == {online.pk: OfferStatus.ACCEPTED, colleague.pk: OfferStatus.WITHDRAWN}
    withdrawn = {group: event["reason"] for group, event in published if event["type"] == "offer.withdrawn"}
    assert withdrawn == {
        f"t{tenant.pk}.agent.{online.pk}": "accepted",
        f"t{tenant.pk}.agent.{colleague.pk}": "taken",
    }
    joined = Message.objects.get(conversation=conversation, event="agent.joined")
    assert joined.event_data == {"agent_name": online.first_name}


def agent_for(user):
    return agent_actor_for(user)


def test_the_console_hello_costs_the_same_statements_for_one_open_chat_as_for_three(
    tenant, widget, queue, online, agent_actor
):
    """No query per conversation in the agent's hello (it runs for every console socket that connects)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from queueing.services import agent_console_open, conversation_accept

    AgentProfile.objects.filter(user=agent_actor.user).update(max_chats=5)

    def start_and_accept(visitor_id):
        conversation = conversation_start(
            widget=widget, visitor_id=visitor_id, answers={"name": visitor_id}
        ).conversation
        conversation_accept(actor=agent_actor, conversation_id=conversation.pk)

    def hello_statements():
        with CaptureQueriesContext(connection) as queries:
            hello = agent_console_open(actor=agent_actor).hello
        return len(queries), len(hello["conversations"])

    start_and_accept("v-1")
    one = hello_statements()
    start_and_accept("v-2")
    start_and_accept("v-3")
    three = hello_statements()
    assert (one[1], three[1]) == (1, 3)
    assert three[0] == one[0]


def test_accept_respects_max_chats(tenant, widget, queue, online, agent_actor):
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    first = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    second = conversation_request(widget=widget, visitor_id="v2", answers={"name": "B"}).conversation
    conversation_accept(actor=agent_actor, conversation_id=first.pk)
    with pytest.raises(ApplicationError) as error:
        conversation_accept(actor=agent_actor, conversation_id=second.pk)
    assert error.value.code == "at_capacity"


def test_only_queue_members_pick_up_without_an_offer(tenant, widget, queue, conversation):
    outsider = agent_actor_for(MembershipFactory(tenant=tenant).user)
    with pytest.raises(ApplicationError) as error:
        conversation_accept(actor=outsider, conversation_id=conversation.pk)
    assert error.value.code == "not_in_queue"
    assert waiting_list(actor=outsider) == []


def test_waiting_list_and_reject(widget, queue, online, agent_actor):
    conversation = conversation_request(
        widget=widget, visitor_id="v1", answers={"name": "Ann"}, message="hi"
    ).conversation
    items = waiting_list(actor=agent_actor)
    assert [(i["conversation_id"], i["contact_name"], i["preview"]) for i in items] == [(conversation.pk, "Ann", "hi")]
    offer_reject(actor=agent_actor, conversation_id=conversation.pk)
    assert Offer.objects.get(conversation=conversation).status == OfferStatus.REJECTED
    # Rejecting keeps it waiting, and pickable from the list.
    assert conversation_accept(actor=agent_actor, conversation_id=conversation.pk).status == ConversationStatus.OPEN


# --- close and disposition ---------------------------------------------------------------------------------


def test_an_agent_must_pick_a_disposition_before_closing(assigned, agent_actor, disposition, other_tenant):
    with pytest.raises(ApplicationError) as error:
        conversation_end(actor=agent_actor, conversation_id=assigned.pk)
    assert error.value.code == "disposition_required"
    foreign = DispositionFactory(tenant=other_tenant)
    inactive = DispositionFactory(tenant=assigned.tenant, is_active=False)
    for bad in (foreign.pk, inactive.pk, "2"):
        with pytest.raises(ApplicationError) as error:
            conversation_set_disposition(actor=agent_actor, conversation_id=assigned.pk, disposition_id=bad)
        assert error.value.code == "invalid_disposition"

    conversation_set_disposition(actor=agent_actor, conversation_id=assigned.pk, disposition_id=disposition.pk)
    result = conversation_end(actor=agent_actor, conversation_id=assigned.pk)
    assert result.closed_now
    assigned.refresh_from_db()
    assert assigned.status == ConversationStatus.CLOSED and assigned.disposition == disposition
    notice = Message.objects.filter(conversation=assigned).order_by("-seq").first()
    assert (notice.sender_kind, notice.event, notice.event_data["by"]) == ("system", "conversation.closed", "agent")
    # Closing twice changes nothing and stores no second notice.
    assert conversation_end(actor=agent_actor, conversation_id=assigned.pk).closed_now is False
    assert Message.objects.filter(conversation=assigned, event="conversation.closed").count() == 1


def test_the_visitor_ends_the_chat_without_a_disposition_and_offers_are_withdrawn(widget, queue, online, visitor):
    conversation = conversation_request(
        widget=widget, visitor_id=visitor.visitor_id, answers={"name": "A"}
    ).conversation
    conversation_end(actor=visitor, conversation_id=conversation.pk)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert Message.objects.get(conversation=conversation, event="conversation.closed").event_data == {"by": "visitor"}
    assert Offer.objects.get(conversation=conversation).status == OfferStatus.WITHDRAWN


# --- presence ---------------------------------------------------------------------------------------------


def test_an_agent_whose_sockets_are_gone_past_the_grace_period_goes_offline(agent, settings):
    settings.PRESENCE_GRACE_SECONDS = 0
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    agent_socket_opened(user=agent)
    assert presence_sweep() == []  # a socket is open
    agent_socket_closed(user=agent)
    agent_socket_closed(user=agent)  # a second close never goes below zero
    assert AgentProfile.objects.get(user=agent).open_sockets == 0
    assert presence_sweep() == [agent.pk]
    assert AgentProfile.objects.get(user=agent).presence == Presence.OFFLINE


def gone_since_long(user):
    """The server process holding the agent's only socket died: counted open, silent for an hour."""
    long_ago = timezone.now() - timedelta(hours=1)
    AgentProfile.objects.filter(user=user).update(open_sockets=1, last_heartbeat_at=long_ago)


def test_the_sweep_takes_agents_whose_sockets_died_offline_and_withdraws_their_offers(
    tenant, widget, queue, online, settings, django_capture_on_commit_callbacks
):
    settings.PRESENCE_GRACE_SECONDS = 0
    still_here = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=still_here).update(presence=Presence.ONLINE)
    agent_socket_opened(user=still_here)
    conversation = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    offer = Offer.objects.get(conversation=conversation, agent=online)
    gone_since_long(online)

    with django_capture_on_commit_callbacks() as callbacks:
        result = agents_offline_sweep()
    assert result == OfflineSweep(sockets_cleared=1, user_ids=[online.pk], offers_withdrawn=1)
    # agent.presence to the colleagues and offer.withdrawn to the agent, both waiting for the commit.
    assert len(callbacks) == 2
    assert AgentProfile.objects.get(user=online).presence == Presence.OFFLINE
    assert AgentProfile.objects.get(user=still_here).presence == Presence.ONLINE
    offer.refresh_from_db()
    assert offer.status == OfferStatus.WITHDRAWN
    # The conversation still waits for the others; a second pass finds nothing to do.
    assert Offer.objects.get(conversation=conversation, agent=still_here).status == OfferStatus.PENDING
    assert agents_offline_sweep() == OfflineSweep(sockets_cleared=0, user_ids=[], offers_withdrawn=0)


def _an_online_agent_with_an_offer_whose_server_died() -> dict:
    widget = WidgetFactory()
    queue = QueueFactory(tenant=widget.tenant)
    QueueRouteFactory(tenant=widget.tenant, queue=queue, widget=widget)
    agent = MembershipFactory(tenant=widget.tenant).user
    QueueMemberFactory(tenant=widget.tenant, queue=queue, user=agent)
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    conversation = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    gone_since_long(agent)
    return {
        "tenant": widget.tenant_id,
        "agent": agent.pk,
        "name": user_display_name(agent),
        "conversation": conversation.pk,
        "offer": Offer.objects.get(agent=agent).pk,
    }


@pytest.mark.django_db(transaction=True)
async def test_colleagues_hear_that_the_sweep_took_an_agent_offline_as_after_a_manual_change(settings):
    """Read from the real channel layer, after a real commit: the events of a manual `presence.set offline`."""
    settings.PRESENCE_GRACE_SECONDS = 0
    setup = await database_sync_to_async(_an_online_agent_with_an_offer_whose_server_died)()
    layer = get_channel_layer()
    colleagues, own = await layer.new_channel(), await layer.new_channel()
    groups = [(tenant_agents_group(setup["tenant"]), colleagues), (agent_group(setup["tenant"], setup["agent"]), own)]
    for group, channel in groups:
        await layer.group_add(group, channel)
    try:
        await database_sync_to_async(agents_offline_sweep)()
        presence = await asyncio.wait_for(layer.receive(colleagues), 10)
        withdrawn = await asyncio.wait_for(layer.receive(own), 10)
    finally:
        for group, channel in groups:
            await layer.group_discard(group, channel)
        # The database thread keeps its connection; close it, or the test database cannot be flushed.
        await sync_to_async(connections.close_all)()
    assert presence == {
        "type": "agent.presence",
        "user_id": setup["agent"],
        "name": setup["name"],
        "presence": "offline",
    }
    assert withdrawn == {
        "type": "offer.withdrawn",
        "conversation_id": setup["conversation"],
        "offer_id": setup["offer"],
        "reason": "unavailable",
    }


# --- widgets ----------------------------------------------------------------------------------------------


def test_a_widget_is_deleted_with_its_route_unless_conversations_wait_or_are_open(widget, queue, conversation):
    with pytest.raises(ApplicationError) as error:
        widget_delete(widget=widget)
    assert (error.value.code, error.value.status) == ("widget_in_use", 409)
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.CLOSED)
    widget_delete(widget=widget)
    assert not Widget.objects.filter(pk=widget.pk).exists()
    assert not QueueRoute.objects.filter(queue=queue).exists()
    conversation.refresh_from_db()
    assert conversation.widget_id is None  # past conversations stay


# --- uploads ----------------------------------------------------------------------------------------------


def upload(name, data, content_type):
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_uploads_are_sniffed_and_limited_by_the_widget(visitor, conversation, widget, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    png = attachment_upload(
        actor=visitor, conversation_id=conversation.pk, upload=upload("../../x.png", PNG, "image/png")
    )
    assert (png.content_type, png.filename, png.uploaded_by_visitor) == ("image/png", "x.png", True)
    assert "x.png" not in png.file.name and png.file.name.startswith(f"attachments/t{conversation.tenant_id}/")
    # The sniffed type wins over a wrong claim.
    pdf = attachment_upload(
        actor=visitor, conversation_id=conversation.pk, upload=upload("doc.bin", PDF, "application/octet-stream")
    )
    assert pdf.content_type == "application/pdf"
    text = attachment_upload(
        actor=visitor, conversation_id=conversation.pk, upload=upload("note.txt", "héllo".encode(), "text/plain")
    )
    assert text.content_type == "text/plain"

    refused = [
        (upload("big.png", PNG + b"\x00" * widget.max_upload_bytes, "image/png"), "file_too_large"),
        (upload("page.png", b"<html><script>alert(1)</script>", "image/png"), "file_type_mismatch"),
        (
            upload("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', "image/svg+xml"),
            "file_type_not_allowed",
        ),
        (upload("x.txt", b"<!DOCTYPE html><html><body>hi", "text/plain"), "file_type_not_allowed"),
        (upload("x.html", b"<html></html>", "text/html"), "file_type_not_allowed"),
        (upload("bin.txt", b"\x00\x01\xff\xfe", "text/plain"), "file_type_mismatch"),
        (upload("a.zip", b"PK\x03\x04" + b"\x00" * 20, "application/zip"), "file_type_not_allowed"),
        (upload("empty.txt", b"", "text/plain"), "invalid"),
    ]
    for file, code in refused:
        with pytest.raises(ApplicationError) as error:
            attachment_upload(actor=visitor, conversation_id=conversation.pk, upload=file)
        assert error.value.code == code, file.name
    assert Attachment.objects.count() == 3


def test_a_widget_that_allows_no_images_refuses_a_real_png(visitor, conversation, widget, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    widget.allowed_file_types = ["application/pdf"]
    widget.save()
    with pytest.raises(ApplicationError) as error:
        attachment_upload(actor=visitor, conversation_id=conversation.pk, upload=upload("x.png", PNG, "image/png"))
    assert error.value.code == "file_type_not_allowed"


def test_an_attachment_is_sent_once_by_its_uploader(visitor, assigned, agent_actor, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    file = attachment_upload(actor=visitor, conversation_id=assigned.pk, upload=upload("x.png", PNG, "image/png"))
    with pytest.raises(ApplicationError) as error:
        post(agent_actor, assigned, body="", client_id="a1", attachment_ids=[file.pk])
    assert error.value.code == "invalid_attachment"
    sent = post(visitor, assigned, body="", client_id="v1", attachment_ids=[file.pk]).message
    file.refresh_from_db()
    assert file.message == sent
    with pytest.raises(ApplicationError) as error:
        post(visitor, assigned, body="again", client_id="v2", attachment_ids=[file.pk])
    assert error.value.code == "invalid_attachment"


def test_attachments_are_readable_by_the_conversations_visitor_and_the_tenants_team_under_the_read_rule(
    visitor, conversation, tenant, other_tenant, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    file = attachment_upload(
        actor=visitor, conversation_id=conversation.pk, upload=upload("n.txt", io.BytesIO(b"hi").read(), "text/plain")
    )
    assert attachment_get_for(actor=visitor, attachment_id=file.pk) == file
    supervisor = agent_actor_for(MembershipFactory(tenant=tenant, role=Role.SUPERVISOR).user)
    assert attachment_get_for(actor=supervisor, attachment_id=file.pk) == file
    # Any agent once it is in the transcript the customer saw (tests/api/test_read_rule.py has the rest).
    post(visitor, conversation, body="", client_id="with-file", attachment_ids=[file.pk])
    colleague = agent_actor_for(MembershipFactory(tenant=tenant).user)
    assert attachment_get_for(actor=colleague, attachment_id=file.pk) == file
    outsiders = [
        VisitorActor(tenant_id=visitor.tenant_id, widget_id=visitor.widget_id, visitor_id="other"),
        agent_actor_for(MembershipFactory(tenant=other_tenant).user),
    ]
    for outsider in outsiders:
        with pytest.raises(ApplicationError) as error:
            attachment_get_for(actor=outsider, attachment_id=file.pk)
        assert error.value.code == "not_found"


def test_agents_never_receive_a_visitors_client_id(tenant):
    """A visitor's client_id can be the one that started the conversation (a retried start with it returns
    the visitor's token), so agent-facing payloads carry only agents' own client ids."""
    from chat import events
    from tests.factories import MessageFactory

    visitor_message = MessageFactory(tenant=tenant, sender_kind=SenderKind.VISITOR, client_id="start-secret")
    agent_message = MessageFactory(
        tenant=tenant, conversation=visitor_message.conversation, sender_kind=SenderKind.AGENT, client_id="agent-1"
    )
    assert events.agent_message_view(events.message_data(visitor_message))["client_id"] is None
    assert events.agent_message_view(events.message_data(agent_message))["client_id"] == "agent-1"
    visitor_view = events.visitor_message_view(events.message_data(visitor_message), visitor_id="v")
    assert visitor_view is not None and visitor_view["client_id"] == "start-secret"


# --- message_post: the statements of one message, and a resend racing its original ----------------------


def test_a_new_message_costs_at_most_five_statements(visitor, assigned, agent_actor, django_assert_max_num_queries):
    # The dedupe SELECT, the UPDATE … RETURNING that authorises and takes the seq, the INSERT, and the
    # savepoint around the last two (a transaction of its own outside the test's).
    with django_assert_max_num_queries(5):
        assert post(visitor, assigned, body="from the visitor").created
    with django_assert_max_num_queries(5):
        assert post(agent_actor, assigned, body="from the agent").created
    with django_assert_max_num_queries(2):  # a resend: the dedupe SELECT and the access check
        assert post(visitor, assigned, body="from the visitor").created is False
    assigned.refresh_from_db()
    assert assigned.last_seq == Message.objects.filter(conversation=assigned).count()


def test_message_post_refuses_strangers_and_closed_conversations_without_taking_a_seq(
    visitor, conversation, widget, agent_actor
):
    stranger = VisitorActor(tenant_id=visitor.tenant_id, widget_id=widget.pk, visitor_id="someone-else")
    with pytest.raises(ApplicationError) as error:
        post(stranger, conversation, body="hello")
    assert error.value.code == "not_found"
    with pytest.raises(ApplicationError) as error:  # an agent of the tenant who is neither assignee nor participant
        post(agent_actor, conversation, body="hello")
    assert error.value.code in {"not_found", "permission_denied"}
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.CLOSED)
    with pytest.raises(ApplicationError) as error:
        post(visitor, conversation, body="hello")
    assert error.value.code == "conversation_closed"
    conversation.refresh_from_db()
    assert conversation.last_seq == Message.objects.filter(conversation=conversation).count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_resend_racing_its_original_acks_the_stored_message_and_leaves_no_seq_hole(visitor, conversation):
    """The resend's dedupe SELECT runs before the original commits: it waits on the row lock, then the
    client_id constraint decides and its rollback takes back the seq it had taken."""
    original_stored, resend_waiting = threading.Event(), threading.Event()
    results = {}

    def original():
        try:
            with transaction.atomic():
                results["original"] = post(visitor, conversation, body="once", client_id="race")
                original_stored.set()
                resend_waiting.wait(10)  # the resend is now blocked on the conversation's row
        finally:
            connections.close_all()

    def resend():
        try:
            original_stored.wait(10)
            threading.Timer(0.5, resend_waiting.set).start()
            results["resend"] = post(visitor, conversation, body="once", client_id="race")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=original), threading.Thread(target=resend)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert (results["original"].created, results["resend"].created) == (True, False)
    assert results["resend"].message.pk == results["original"].message.pk
    after = post(visitor, conversation, body="next")
    seqs = list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and after.message.seq == seqs[-1]
    conversation.refresh_from_db()
    assert conversation.last_seq == seqs[-1]


def test_each_announced_change_carries_the_next_version_and_hello_the_latest(
    visitor, conversation, agent_actor, queue, disposition, published, django_capture_on_commit_callbacks
):
    from chat.selectors import visitor_hello
    from chat.services import conversation_mark_important

    before = conversation.state_version
    with django_capture_on_commit_callbacks(execute=True):
        conversation_accept(actor=agent_actor, conversation_id=conversation.pk)
        conversation_mark_important(actor=agent_actor, conversation_id=conversation.pk, important=True)
        conversation_set_disposition(actor=agent_actor, conversation_id=conversation.pk, disposition_id=disposition.pk)
        conversation_close(actor=agent_actor, conversation_id=conversation.pk)

    updates = [event for _, event in published if event["type"] == "conversation.updated"]
    versions = [event["conversation"]["version"] for event in updates]
    assert versions == [before + 1, before + 2, before + 3, before + 4]
    assert [event["visitor_conversation"]["version"] for event in updates] == versions
    # Each version goes with the state of its own commit.
    assert [(e["conversation"]["important"], e["conversation"]["status"]) for e in updates] == [
        (False, "open"),
        (True, "open"),
        (True, "open"),
        (True, "closed"),
    ]
    assert visitor_hello(actor=visitor, conversation_id=conversation.pk)["conversation"]["version"] == before + 4
