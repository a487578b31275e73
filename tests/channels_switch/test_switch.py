"""Switching a live web chat (seed 000): the switch re-checks eligibility, moves the chat with its history and
assignee, records who did it, writes the introduction the relay sends, and goes one way only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from channels_switch.models import ChannelSwitch, Delivery, SandboxMessage, WidgetSwitching
from channels_switch.services import connector_save, conversation_switch, delivery_attempt
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import (
    VisitorActor,
    agent_actor_for,
    conversation_moved_by_link,
    visitor_current_conversation,
    visitor_moved_conversation,
)
from chat.services import message_post
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity
from queueing.services import conversation_end
from tests.factories import ContactIdentityFactory, ConversationFactory, WidgetFactory

pytestmark = pytest.mark.django_db

PHONE = "+447911123456"
EMAIL = "ada@example.org"


@pytest.fixture(autouse=True)
def outbox_on(settings):
    settings.SANDBOX_OUTBOX = True


@pytest.fixture
def widget(tenant):
    widget = WidgetFactory(tenant=tenant, title="Acme help")
    WidgetSwitching.objects.create(tenant=tenant, widget=widget, show_button=True, channels=["sms", "email"])
    for kind, sender in (("sms", "+14155550100"), ("email", "help@shop.example")):
        connector_save(tenant=tenant, kind=kind, provider="sandbox", from_address=sender)
    return widget


@pytest.fixture
def chat(tenant, widget, agent):
    conversation = ConversationFactory(
        tenant=tenant, widget=widget, visitor_id="v-1", status=ConversationStatus.OPEN, assignee=agent
    )
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=PHONE)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="email", value=EMAIL)
    message_post(actor=agent_actor_for(agent), conversation_id=conversation.pk, body="How can I help?", client_id="a1")
    return conversation


@pytest.fixture
def visitor(chat):
    return VisitorActor(tenant_id=chat.tenant_id, widget_id=chat.widget_id, visitor_id=chat.visitor_id)


def test_a_visitor_switch_moves_the_chat_with_its_history_and_assignee(chat, visitor, agent):
    switch = conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address, chat.assignee_id, chat.status) == ("sms", PHONE, agent.pk, "open")
    assert (switch.from_channel, switch.to_channel, switch.address, switch.by) == ("web", "sms", PHONE, "visitor")
    bodies = list(Message.objects.filter(conversation=chat).order_by("seq").values_list("channel", "event", "body"))
    assert bodies[0] == ("web", "", "How can I help?")  # the history stays
    assert bodies[1] == ("sms", "conversation.switched", "We'll continue this conversation by SMS at +44 7911 123456.")
    assert bodies[2][:2] == ("sms", "channel.introduction")


def test_the_introduction_says_who_writes_and_how_to_reply_and_goes_out_through_the_relay(chat, visitor):
    switch = conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    introduction = switch.introduction
    assert "Hello from Acme help" in introduction.body and "Reply to this text" in introduction.body
    assert "Reply STOP" in introduction.body
    delivery = Delivery.objects.get(message=introduction)
    assert (delivery.channel, delivery.to_address) == ("sms", PHONE)
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    assert SandboxMessage.objects.get().body == introduction.body


def test_by_email_the_introduction_asks_for_a_reply_to_the_mail(chat, visitor):
    switch = conversation_switch(actor=visitor, conversation_id=chat.pk, channel="email")
    assert "Reply to this email" in switch.introduction.body and "STOP" not in switch.introduction.body
    assert Delivery.objects.get(message=switch.introduction).to_address == EMAIL


def test_the_server_re_checks_a_stale_choice(chat, visitor, widget, tenant):
    WidgetSwitching.objects.filter(widget=widget).update(channels=["email"])
    with pytest.raises(ApplicationError) as refused:
        conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    assert refused.value.code == "switch_unavailable" and "SMS is not available" in refused.value.message
    chat.refresh_from_db()
    assert chat.channel == "web" and not ChannelSwitch.objects.exists() and not Delivery.objects.exists()


def test_a_channel_turned_off_since_the_widget_loaded_is_refused(chat, visitor, tenant):
    connector_save(tenant=tenant, instance=tenant.channelconnector_set.get(kind="sms"), enabled=False)
    with pytest.raises(ApplicationError, match="not available"):
        conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")


def test_an_unknown_channel_is_a_clear_error(chat, visitor):
    with pytest.raises(ApplicationError) as refused:
        conversation_switch(actor=visitor, conversation_id=chat.pk, channel="fax")
    assert refused.value.code == "invalid"


def test_an_agent_gets_the_reason_they_can_act_on(chat, agent, widget):
    WidgetSwitching.objects.filter(widget=widget).update(show_button=False)
    with pytest.raises(ApplicationError, match="button is off"):
        conversation_switch(actor=agent_actor_for(agent), conversation_id=chat.pk, channel="sms")


def test_an_agent_switch_is_recorded_as_theirs(chat, agent):
    switch = conversation_switch(actor=agent_actor_for(agent), conversation_id=chat.pk, channel="email")
    assert (switch.by, switch.by_user_id) == ("agent", agent.pk)


def test_another_visitor_cannot_switch_the_chat(chat, widget):
    stranger = VisitorActor(tenant_id=chat.tenant_id, widget_id=widget.pk, visitor_id="v-2")
    with pytest.raises(ApplicationError):
        conversation_switch(actor=stranger, conversation_id=chat.pk, channel="sms")
    chat.refresh_from_db()
    assert chat.channel == "web"


def test_another_tenants_conversation_is_not_found(chat, other_tenant):
    outsider = VisitorActor(tenant_id=other_tenant.pk, widget_id=chat.widget_id, visitor_id=chat.visitor_id)
    with pytest.raises(ApplicationError) as refused:
        conversation_switch(actor=outsider, conversation_id=chat.pk, channel="sms")
    assert refused.value.status == 404


def test_one_direction_a_switched_chat_cannot_switch_again(chat, visitor):
    conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    with pytest.raises(ApplicationError):
        conversation_switch(actor=visitor, conversation_id=chat.pk, channel="email")


def test_after_a_switch_the_visitor_can_no_longer_write_or_end_it_on_the_web(chat, visitor):
    conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    with pytest.raises(ApplicationError) as refused:
        message_post(actor=visitor, conversation_id=chat.pk, body="still there?", client_id="v1")
    assert refused.value.code == "conversation_switched" and "continues by SMS" in refused.value.message
    with pytest.raises(ApplicationError, match="continues by SMS"):
        conversation_end(actor=visitor, conversation_id=chat.pk)


def test_a_reopened_widget_starts_fresh_and_knows_where_the_chat_went(chat, visitor):
    conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    assert visitor_current_conversation(actor=visitor) is None
    assert visitor_moved_conversation(actor=visitor).pk == chat.pk
    # The visitor's own move ends the session here: the widget offers a new chat, not the moved one live.
    assert not conversation_moved_by_link(conversation=chat)


def test_only_the_introduction_goes_to_a_typed_number_until_the_customer_answers(client, chat, visitor, agent):
    conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    with pytest.raises(ApplicationError) as refused:
        message_post(actor=agent_actor_for(agent), conversation_id=chat.pk, body="Still there?", client_id="a2")
    assert refused.value.code == "awaiting_customer"
    assert Delivery.objects.count() == 1  # the introduction only

    client.force_login(agent)
    client.post(reverse("sandbox-customer-writes"), {"channel": "sms", "address": PHONE, "body": "Yes, it's me"})
    answer = Message.objects.filter(conversation=chat).order_by("-seq").first()
    assert (answer.sender_kind, answer.body, answer.channel) == (SenderKind.VISITOR, "Yes, it's me", "sms")
    assert ContactIdentity.objects.get(contact=chat.contact, kind="phone").verified  # the answer proved it
    message_post(actor=agent_actor_for(agent), conversation_id=chat.pk, body="Great, here is the link", client_id="a3")
    assert Delivery.objects.count() == 2


def test_the_answer_threads_back_even_when_the_number_is_verified_on_another_contact(client, chat, visitor, agent):
    other = ConversationFactory(tenant=chat.tenant, channel="sms", status=ConversationStatus.CLOSED)
    ContactIdentityFactory(tenant=chat.tenant, contact=other.contact, kind="phone", value=PHONE, verified=True)
    conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    client.force_login(agent)
    client.post(reverse("sandbox-customer-writes"), {"channel": "sms", "address": PHONE, "body": "Here"})
    assert Message.objects.filter(conversation=chat, body="Here").exists()
    assert Conversation.objects.count() == 2  # no new conversation was started


def test_the_console_lists_each_channel_offered_or_why_not(client, chat, agent, widget):
    client.force_login(agent)
    response = client.get(reverse("console-api-switch-options", kwargs={"conversation_id": chat.pk}))
    assert response.status_code == 200
    channels = {c["channel"]: c for c in response.json()["channels"]}
    assert channels["sms"] == {"channel": "sms", "offered": True, "reason": "", "address": "+44 7911 123456"}
    assert channels["email"]["offered"] and channels["email"]["address"] == EMAIL
    assert (
        not channels["whatsapp"]["offered"]
        and "not among this widget's switch channels" in channels["whatsapp"]["reason"]
    )


def test_the_console_options_are_not_for_other_tenants_or_readers(client, chat, other_tenant):
    from tests.factories import MembershipFactory

    outsider = MembershipFactory(tenant=other_tenant, role="agent").user
    client.force_login(outsider)
    response = client.get(reverse("console-api-switch-options", kwargs={"conversation_id": chat.pk}))
    assert response.status_code == 404
    client.logout()
    assert client.get(reverse("console-api-switch-options", kwargs={"conversation_id": chat.pk})).status_code == 401


def test_integrators_subscribed_hear_of_the_switch(settings, chat, visitor, tenant):
    from contactcenter.models import WebhookEvent
    from contactcenter.services.webhooks_out import webhook_subscription_create

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    webhook_subscription_create(tenant=tenant, url="http://127.0.0.1:9/hooks", event_types=["conversation.switched"])
    conversation_switch(actor=visitor, conversation_id=chat.pk, channel="sms")
    event = WebhookEvent.objects.get(tenant=tenant)
    assert event.type == "conversation.switched"
    assert event.payload["from_channel"] == "web"
    assert (event.payload["conversation"]["id"], event.payload["conversation"]["channel"]) == (chat.pk, "sms")
