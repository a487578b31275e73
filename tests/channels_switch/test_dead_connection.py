"""Dead-connection detection: a chat whose visitor's lease on `visitor_away_deadline` ran out while an agent's reply
is unread moves by itself (by the system) to the first channel the visitor can be reached on, in the widget's
order, with the unread replies in the introduction; in every other case the sweep leaves it alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_switch.models import ChannelSwitch, Delivery, WidgetSwitching
from channels_switch.services import connector_save, dead_connections_sweep, widget_switching_save
from chat.models import Conversation, ConversationStatus
from chat.selectors import agent_actor_for
from chat.services import message_post, visitor_lease_renew
from contactcenter.errors import ApplicationError
from contactcenter.wiring.tasks import sweep_once
from tests.factories import ContactIdentityFactory, ConversationFactory, WidgetFactory

pytestmark = pytest.mark.django_db

PHONE = "+447911123456"
EMAIL = "ada@example.org"


@pytest.fixture
def widget(tenant):
    widget = WidgetFactory(tenant=tenant, title="Acme help")
    widget_switching_save(
        tenant=tenant,
        widget=widget,
        show_button=False,  # detection needs no button
        channels=["sms", "email"],
        dead_connection=True,
        dead_connection_seconds=60,
    )
    for kind, sender in (("sms", "+14155550100"), ("email", "help@shop.example")):
        connector_save(tenant=tenant, kind=kind, provider="sandbox", from_address=sender)
    return widget


def open_chat(tenant, widget, agent, *identities):
    conversation = ConversationFactory(
        tenant=tenant, widget=widget, visitor_id="v-1", status=ConversationStatus.OPEN, assignee=agent
    )
    for kind, value in identities:
        ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind=kind, value=value)
    return conversation


@pytest.fixture
def chat(tenant, widget, agent):
    return open_chat(tenant, widget, agent, ("phone", PHONE), ("email", EMAIL))


def reply(conversation, agent, body):
    return message_post(
        actor=agent_actor_for(agent), conversation_id=conversation.pk, body=body, client_id=body[:20]
    ).message


def gone_since(conversation, seconds=1):
    Conversation.objects.filter(pk=conversation.pk).update(
        visitor_away_deadline=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_gone_visitor_with_an_unread_reply_is_moved_by_the_system(chat, agent):
    first = reply(chat, agent, "Your refund is approved.")
    second = reply(chat, agent, "It will show in 3 days.")
    gone_since(chat)
    assert dead_connections_sweep() == 1
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address, chat.visitor_away_deadline) == ("sms", PHONE, None)
    switch = ChannelSwitch.objects.get(conversation=chat)
    assert (switch.by, switch.by_user_id, switch.to_channel) == ("system", None, "sms")
    introduction = switch.introduction.body
    assert "We lost touch with you in our website chat" in introduction
    assert "Your refund is approved." in introduction and "It will show in 3 days." in introduction
    assert switch.introduction.event_data["relayed_seqs"] == [first.seq, second.seq]
    assert Delivery.objects.get(message=switch.introduction).to_address == PHONE


def test_the_first_channel_the_visitor_can_be_reached_on_in_the_widgets_order(tenant, widget, agent):
    chat = open_chat(tenant, widget, agent, ("email", EMAIL))  # no phone: SMS is skipped
    reply(chat, agent, "Here is the answer.")
    gone_since(chat)
    assert dead_connections_sweep() == 1
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address) == ("email", EMAIL)


def test_a_visitor_who_came_back_in_time_notices_nothing(chat, agent):
    reply(chat, agent, "Anything else?")
    visitor_lease_renew(tenant_id=chat.tenant_id, conversation_id=chat.pk, seconds=60)
    assert dead_connections_sweep() == 0
    chat.refresh_from_db()
    assert chat.channel == "web" and chat.visitor_away_deadline > timezone.now()


def test_nothing_unread_nothing_moves(chat, agent):
    reply(chat, agent, "Seen this one.")
    Conversation.objects.filter(pk=chat.pk).update(visitor_read_seq=chat.last_seq + 1)
    gone_since(chat)
    assert dead_connections_sweep() == 0
    chat.refresh_from_db()
    assert chat.channel == "web"


def test_a_private_note_is_not_an_unread_reply_and_is_looked_at_again_later(chat, agent):
    message_post(actor=agent_actor_for(agent), conversation_id=chat.pk, body="note", client_id="n1", private=True)
    gone_since(chat)
    assert dead_connections_sweep() == 0
    chat.refresh_from_db()
    assert chat.channel == "web" and chat.visitor_away_deadline > timezone.now()  # re-checked in a while
    reply(chat, agent, "Are you still there?")  # an agent's reply after the visitor left moves it then
    gone_since(chat)
    assert dead_connections_sweep() == 1


def test_detection_turned_off_moves_nothing_and_clears_the_deadline(chat, agent, widget):
    WidgetSwitching.objects.filter(widget=widget).update(dead_connection=False)
    reply(chat, agent, "Hello?")
    gone_since(chat)
    assert dead_connections_sweep() == 0
    chat.refresh_from_db()
    assert (chat.channel, chat.visitor_away_deadline) == ("web", None)


def test_a_visitor_who_cannot_be_reached_stays_on_the_web(tenant, widget, agent):
    chat = open_chat(tenant, widget, agent)  # no address at all
    reply(chat, agent, "Hello?")
    gone_since(chat)
    assert dead_connections_sweep() == 0
    chat.refresh_from_db()
    assert (chat.channel, chat.visitor_away_deadline) == ("web", None)


def test_a_chat_still_waiting_for_an_agent_is_not_moved(tenant, widget):
    chat = ConversationFactory(tenant=tenant, widget=widget, visitor_id="v-1", status=ConversationStatus.WAITING)
    ContactIdentityFactory(tenant=tenant, contact=chat.contact, kind="phone", value=PHONE)
    Conversation.objects.filter(pk=chat.pk).update(last_seq=3)
    gone_since(chat)
    assert dead_connections_sweep() == 0


def test_the_periodic_sweep_runs_it(chat, agent):
    reply(chat, agent, "Here you go.")
    gone_since(chat)
    assert sweep_once()["chats_moved_after_lost_connection"] == 1


def test_the_lease_leaves_closed_and_moved_chats_alone(chat):
    Conversation.objects.filter(pk=chat.pk).update(status=ConversationStatus.CLOSED)
    visitor_lease_renew(tenant_id=chat.tenant_id, conversation_id=chat.pk, seconds=60)
    chat.refresh_from_db()
    assert chat.visitor_away_deadline is None


def test_the_lease_is_the_tenants_own(chat, other_tenant):
    visitor_lease_renew(tenant_id=other_tenant.pk, conversation_id=chat.pk, seconds=60)
    chat.refresh_from_db()
    assert chat.visitor_away_deadline is None


def test_the_timeout_is_checked(tenant, widget):
    with pytest.raises(ApplicationError, match="Between 30 and 3600"):
        widget_switching_save(
            tenant=tenant, widget=widget, show_button=True, channels=[], dead_connection=True, dead_connection_seconds=5
        )
