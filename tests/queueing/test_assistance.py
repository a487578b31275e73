"""Ask for assistance: the supervisors on duty are alerted with a way into the chat, where they read it live,
whisper (a private note, without taking part) and may join it."""

from __future__ import annotations

import pytest

from agents.models import AgentProfile, Presence
from chat.models import Message
from chat.selectors import agent_actor_for
from chat.services import message_post, whisper_post
from contactcenter.errors import ApplicationError, NotFound, PermissionDenied
from contactcenter.models import Role
from queueing.services import assistance_request, conversation_accept, conversation_join, conversation_request
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def member(tenant, role, *, presence=Presence.ONLINE, first_name="Sam"):
    user = MembershipFactory(tenant=tenant, role=role).user
    user.first_name = first_name
    user.save(update_fields=["first_name"])
    AgentProfile.objects.filter(user=user).update(presence=presence)
    return user


@pytest.fixture
def chat(widget, queue, online):
    conversation = conversation_request(
        widget=widget, visitor_id="v1", answers={"name": "Vera"}, message="Help?"
    ).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=conversation.pk)
    conversation.refresh_from_db()
    return conversation


def test_the_supervisors_on_duty_are_alerted(tenant, chat, online, published, django_capture_on_commit_callbacks):
    sam = member(tenant, Role.SUPERVISOR, presence=Presence.AWAY)  # away from offers, still on duty
    ada = member(tenant, Role.ADMIN, first_name="Ada")
    member(tenant, Role.SUPERVISOR, presence=Presence.OFFLINE, first_name="Otto")  # not on duty
    member(tenant, Role.AGENT, first_name="Bob")  # not a supervisor
    with django_capture_on_commit_callbacks(execute=True):
        assert assistance_request(actor=agent_actor_for(online), conversation_id=chat.pk) == 2
    alerts = {g: e for g, e in published if e["type"] == "assistance.requested"}
    assert set(alerts) == {f"t{tenant.pk}.agent.{sam.pk}", f"t{tenant.pk}.agent.{ada.pk}"}
    alert = alerts[f"t{tenant.pk}.agent.{sam.pk}"]
    assert (alert["conversation_id"], alert["contact_name"], alert["queue"]) == (chat.pk, "Vera", "Sales")
    notice = Message.objects.filter(conversation=chat).order_by("-seq").first()
    assert notice.is_private and notice.event == "assistance.requested"  # the agents see it; the visitor never
    # Asked again at once: refused, nobody alerted twice.
    with pytest.raises(ApplicationError) as error:
        assistance_request(actor=agent_actor_for(online), conversation_id=chat.pk)
    assert error.value.code == "rate_limited"


def test_with_no_supervisor_on_duty_the_agent_is_told(tenant, chat, online):
    member(tenant, Role.SUPERVISOR, presence=Presence.OFFLINE)
    with pytest.raises(ApplicationError) as error:
        assistance_request(actor=agent_actor_for(online), conversation_id=chat.pk)
    assert (error.value.code, error.value.message) == ("no_supervisor", "No supervisor is on duty right now.")


def test_only_someone_in_the_chat_asks(tenant, other_tenant, chat):
    bob = member(tenant, Role.AGENT, first_name="Bob")
    with pytest.raises(NotFound):  # not his chat: as absent as another tenant's
        assistance_request(actor=agent_actor_for(bob), conversation_id=chat.pk)
    stranger = member(other_tenant, Role.SUPERVISOR)
    with pytest.raises(NotFound):
        assistance_request(actor=agent_actor_for(stranger), conversation_id=chat.pk)


def test_a_supervisor_whispers_without_taking_part_then_joins(
    tenant, other_tenant, chat, online, published, django_capture_on_commit_callbacks
):
    sam = member(tenant, Role.SUPERVISOR)
    supervisor = agent_actor_for(sam)
    with django_capture_on_commit_callbacks(execute=True):
        result = whisper_post(actor=supervisor, conversation_id=chat.pk, body="Offer the refund.", client_id="w1")
    assert result.created and result.message.is_private and result.message.sender_user_id == sam.pk
    groups = [g for g, e in published if e["type"] == "message.new"]
    assert groups == [f"t{tenant.pk}.conv.{chat.pk}.agents"]  # agents only: the visitor never sees a whisper
    # Sent again (a retry): stored once.
    again = whisper_post(actor=supervisor, conversation_id=chat.pk, body="Offer the refund.", client_id="w1")
    assert not again.created and again.message.pk == result.message.pk
    # A whisper is not a reply: the supervisor has not joined, so they cannot write to the visitor.
    with pytest.raises(PermissionDenied):
        message_post(actor=supervisor, conversation_id=chat.pk, body="Hello", client_id="r1")
    # Agents cannot whisper in chats they are not in; another tenant's supervisor sees no such chat.
    bob = member(tenant, Role.AGENT, first_name="Bob")
    with pytest.raises(PermissionDenied):
        whisper_post(actor=agent_actor_for(bob), conversation_id=chat.pk, body="psst", client_id="b1")
    with pytest.raises(NotFound):
        whisper_post(
            actor=agent_actor_for(member(other_tenant, Role.SUPERVISOR)),
            conversation_id=chat.pk,
            body="x",
            client_id="x",
        )

    conversation_join(actor=supervisor, conversation_id=chat.pk)
    assert list(chat.participants.values_list("pk", flat=True)) == [sam.pk]
    joined = Message.objects.filter(conversation=chat).order_by("-seq").first()
    assert (joined.body, joined.is_private) == ("Sam joined the chat.", False)  # the visitor sees who joined
    message_post(actor=supervisor, conversation_id=chat.pk, body="Hi, I'm Sam.", client_id="r2")
    with pytest.raises(ApplicationError) as error:
        conversation_join(actor=supervisor, conversation_id=chat.pk)
    assert error.value.code == "bad_target"
    with pytest.raises(PermissionDenied):
        conversation_join(actor=agent_actor_for(bob), conversation_id=chat.pk)
