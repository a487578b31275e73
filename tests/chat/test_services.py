"""Live chat services on the test database: seq, dedupe, notes, access, surveys and history isolation, starts
(idempotent, rate limited), widgets, uploads, versions. Routing and the sweep: tests/queueing; presence:
tests/agents; the rate limiter itself: tests/contactcenter."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections, transaction
from django.utils import timezone

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
    conversation_mark_read,
    conversation_set_disposition,
    message_post,
    survey_validate,
    widget_delete,
)
from chat.services.starting import conversation_start
from chat.services.state import conversation_close
from contactcenter.errors import ApplicationError
from contactcenter.models import Contact, ContactIdentity, Role
from contactcenter.services import contact_create, contact_identity_add
from queueing.models import QueueRoute
from queueing.services import conversation_accept
from tests.factories import ConversationFactory, MembershipFactory, WidgetFactory

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
    # The first message of a waiting chat also tells watching inboxes and gives its offers their preview; the
    # resend adds nothing.
    assert [event["type"] for _, event in published] == ["message.new", "inbox.changed", "waiting.preview"]


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


def test_the_visitors_hello_is_one_statement(conversation, visitor, django_assert_num_queries):
    """Every visitor socket opens with it: the conversation, its agent and its widget's limits in one read."""
    from chat.selectors import visitor_hello

    with django_assert_num_queries(1):
        hello = visitor_hello(actor=visitor, conversation_id=conversation.pk)
    assert hello["conversation"]["id"] == conversation.pk
    assert hello["limits"]["max_upload_bytes"] == conversation.widget.max_upload_bytes
