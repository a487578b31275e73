"""A chat switched to WhatsApp on a real Twilio sender opens with the connector's introduction template (WhatsApp
lets a business write first only with an approved one): without one WhatsApp is not offered and the diagnostics
say why; with one the introduction is the rendered template, relayed as ContentSid + ContentVariables."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from channels_switch.models import Delivery, WidgetSwitching
from channels_switch.services import (
    connector_save,
    conversation_switch,
    delivery_attempt,
    inbound_receive,
    switch_diagnostics,
    switch_options,
)
from chat.events import agent_public_name
from chat.models import ConversationStatus, Message
from chat.selectors import VisitorActor, agent_actor_for
from chat.services import message_post
from contactcenter.errors import ApplicationError
from tests.channels_switch.twilio_support import ACCOUNT_SID, twilio_connector
from tests.factories import ContactIdentityFactory, ConversationFactory, WhatsAppTemplateFactory, WidgetFactory

pytestmark = pytest.mark.django_db

PHONE = "+447911123456"
CONTENT_SID = "HX" + "ab" * 16
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def whatsapp(tenant):
    return twilio_connector(tenant, kind="whatsapp", from_address="+14155550111")


@pytest.fixture
def introduction(tenant):
    return WhatsAppTemplateFactory(
        tenant=tenant,
        name="chat_continues",
        body="Hello from {{1}}. {{2}} will continue your website chat here: just reply.",
        content_sid=CONTENT_SID,
    )


@pytest.fixture
def chat(tenant, agent, whatsapp):
    widget = WidgetFactory(tenant=tenant, title="Acme help")
    WidgetSwitching.objects.create(tenant=tenant, widget=widget, show_button=True, channels=["whatsapp"])
    conversation = ConversationFactory(
        tenant=tenant, widget=widget, visitor_id="v-1", status=ConversationStatus.OPEN, assignee=agent
    )
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=PHONE)
    return conversation


def offered(chat) -> tuple[bool, str]:
    option = next(o for o in switch_options(conversation=chat) if o.channel == "whatsapp")
    return option.offered, option.reason


def test_without_an_introduction_template_whatsapp_through_twilio_is_not_offered(chat, whatsapp):
    is_offered, reason = offered(chat)
    assert not is_offered and "introduction template" in reason
    diagnosis = next(d for d in switch_diagnostics(widget=chat.widget) if d.channel == "whatsapp")
    assert any("introduction template" in problem for problem in diagnosis.problems)


def test_with_one_the_switch_opens_with_the_rendered_template_sent_as_twilios_content(
    tenant, chat, whatsapp, introduction, agent, mocked
):
    connector_save(tenant=tenant, instance=whatsapp, introduction_template=introduction)
    assert offered(chat) == (True, "")
    visitor = VisitorActor(tenant_id=tenant.pk, widget_id=chat.widget_id, visitor_id="v-1")
    switch = conversation_switch(actor=visitor, conversation_id=chat.pk, channel="whatsapp")
    assert switch.introduction.body.startswith("Hello from Acme help. ")
    delivery = Delivery.objects.get(message=switch.introduction)
    assert delivery.content_sid == CONTENT_SID and delivery.template_variables["1"] == "Acme help"
    mocked.post(MESSAGES_URL, json={"sid": "SM" + "c" * 32, "status": "queued", "account_sid": ACCOUNT_SID}, status=201)
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    sent = parse_qs(mocked.calls[-1].request.body)
    assert sent["ContentSid"] == [CONTENT_SID] and "Body" not in sent
    variables = json.loads(sent["ContentVariables"][0])
    assert variables == {"1": "Acme help", "2": agent_public_name(agent)}
    assert switch.introduction.body == (
        f"Hello from Acme help. {agent_public_name(agent)} will continue your website chat here: just reply."
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"body": "Hi {{1}} {{2}} {{3}}"}, "at most"),
        ({"enabled": False}, "turned off"),
        ({"content_sid": ""}, "Content SID"),
    ],
)
def test_an_introduction_template_that_cannot_open_a_chat_is_refused(tenant, whatsapp, introduction, change, says):
    for field, value in change.items():
        setattr(introduction, field, value)
    introduction.save()
    with pytest.raises(ApplicationError) as refused:
        connector_save(tenant=tenant, instance=whatsapp, introduction_template=introduction)
    assert says in refused.value.fields["introduction_template"][0]


def test_another_tenants_template_is_refused(tenant, whatsapp):
    theirs = WhatsAppTemplateFactory(content_sid=CONTENT_SID)
    with pytest.raises(ApplicationError) as refused:
        connector_save(tenant=tenant, instance=whatsapp, introduction_template=theirs)
    assert refused.value.fields["introduction_template"] == ["No such template."]


def test_the_sandbox_needs_none(tenant, chat, whatsapp):
    connector_save(tenant=tenant, instance=whatsapp, provider="sandbox", account_sid="")
    assert offered(chat) == (True, "")


def test_replies_a_template_could_not_carry_go_out_once_the_customer_answers(
    tenant, chat, whatsapp, introduction, agent
):
    connector_save(tenant=tenant, instance=whatsapp, introduction_template=introduction)
    WidgetSwitching.objects.filter(widget=chat.widget).update(dead_connection=True)
    unread = message_post(
        actor=agent_actor_for(agent), conversation_id=chat.pk, body="Your refund is approved.", client_id="a1"
    ).message
    switch = conversation_switch(conversation_id=chat.pk, channel="whatsapp", tenant_id=tenant.pk, unread=[unread])
    assert "refund" not in switch.introduction.body  # a template carries only its own text
    assert switch.introduction.event_data["held_seqs"] == [unread.seq]
    inbound_receive(connector=whatsapp, provider_id="SM" + "1" * 32, sender=PHONE, body="Hi, I'm here")
    held = Message.objects.get(conversation=chat, event="channel.held_replies")
    assert held.body == f"Our replies you had not seen yet:\n{agent_public_name(agent)}: Your refund is approved."
    delivery = Delivery.objects.get(message=held)
    assert (delivery.content_sid, delivery.state) == ("", "pending")  # free text now: the window is open
    inbound_receive(connector=whatsapp, provider_id="SM" + "2" * 32, sender=PHONE, body="Thanks")
    assert Message.objects.filter(conversation=chat, event="channel.held_replies").count() == 1
