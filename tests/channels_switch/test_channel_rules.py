"""The providers' rules an agent's message meets before it is stored: an SMS STOP opts the address out (and
START back in), and WhatsApp takes free text only within 24 hours of the customer's last message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_switch.models import Delivery
from channels_switch.services import connector_save, inbound_receive
from channels_switch.services.inbound import opt_out_signal
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity

pytestmark = pytest.mark.django_db

CUSTOMER = "+447911123456"


@pytest.mark.parametrize(
    ("body", "provider_says", "expected"),
    [
        ("STOP", "", True),
        ("stop.", "", True),
        (" Unsubscribe ", "", True),
        ("START", "", False),
        ("unstop", "", False),
        ("Stop sending me the wrong size", "", None),
        ("Stopwatch arrived", "", None),
        ("please stop", "STOP", True),
        ("START", "HELP", False),
        ("hello", "START", False),
    ],
)
def test_opt_out_words_and_the_providers_own_signal(body, provider_says, expected):
    assert opt_out_signal(body=body, provider_says=provider_says) is expected


@pytest.fixture
def sms(tenant):
    return connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")


def customer_writes(connector, body: str, n: int, **extra) -> Conversation:
    inbound = inbound_receive(connector=connector, provider_id=f"SM{n}", sender=CUSTOMER, body=body, **extra)
    return Conversation.objects.get(pk=inbound.conversation_id)


def agent_replies(agent, conversation, body="We can help with that."):
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.OPEN, assignee=agent)
    return message_post(actor=agent_actor_for(agent), conversation_id=conversation.pk, body=body, client_id=body)


def test_stop_opts_the_number_out_and_the_agent_sees_why(tenant, agent, sms):
    conversation = customer_writes(sms, "Where is my order?", 1)
    customer_writes(sms, "STOP", 2)
    identity = ContactIdentity.objects.get(tenant=tenant, value=CUSTOMER)
    assert identity.opted_out_at is not None
    notice = Message.objects.filter(conversation=conversation, sender_kind=SenderKind.SYSTEM).get()
    assert notice.event == "contact.opted_out" and "nothing more can be sent" in notice.body
    with pytest.raises(ApplicationError) as refused:
        agent_replies(agent, conversation)
    assert refused.value.code == "opted_out" and "until they reply START" in refused.value.message
    assert not Message.objects.filter(conversation=conversation, sender_kind=SenderKind.AGENT).exists()
    assert not Delivery.objects.exists()


def test_start_opts_back_in(tenant, agent, sms):
    conversation = customer_writes(sms, "STOP", 1)
    customer_writes(sms, "START", 2)
    assert ContactIdentity.objects.get(tenant=tenant, value=CUSTOMER).opted_out_at is None
    events = list(
        Message.objects.filter(conversation=conversation, sender_kind=SenderKind.SYSTEM).values_list("event", flat=True)
    )
    assert events == ["contact.opted_out", "contact.opted_in"]
    assert agent_replies(agent, conversation).created


def test_the_providers_opt_out_signal_counts_whatever_the_words(tenant, sms):
    customer_writes(sms, "no more texts please", 1, opt_out_type="STOP")
    assert ContactIdentity.objects.get(tenant=tenant, value=CUSTOMER).opted_out_at is not None


@pytest.fixture
def whatsapp(tenant):
    return connector_save(tenant=tenant, kind="whatsapp", provider="sandbox", from_address="+14155550111")


def test_whatsapp_free_text_within_24_hours_of_the_customers_message(tenant, agent, whatsapp):
    conversation = customer_writes(whatsapp, "Hi, a question about returns", 1)
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=23))
    assert agent_replies(agent, conversation).created
    assert Delivery.objects.count() == 1


def test_whatsapp_free_text_after_24_hours_is_refused_with_the_reason(tenant, agent, whatsapp):
    conversation = customer_writes(whatsapp, "Hi, a question about returns", 1)
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=25))
    with pytest.raises(ApplicationError) as refused:
        agent_replies(agent, conversation)
    assert refused.value.code == "outside_whatsapp_window" and "24 hours" in refused.value.message
    assert not Delivery.objects.exists()
    customer_writes(whatsapp, "Still there?", 2)  # the customer writes again: the window opens again
    assert agent_replies(agent, conversation, body="Yes, here!").created
