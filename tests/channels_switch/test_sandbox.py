"""The sandbox: what sandbox channels send lands in the outbox page; a person answers as the customer and the
answer comes in through the channel's webhook, signed as the sandbox signs, like a provider's."""

from __future__ import annotations

import pytest
from django.urls import reverse

from channels_switch.models import SandboxDirection, SandboxMessage
from channels_switch.sandbox import sandbox_signature
from channels_switch.services import connector_save, delivery_attempt
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from contactcenter.wiring.demo import demo_seed
from queueing.models import ConversationRoute
from tests.factories import ContactIdentityFactory, ConversationFactory, MembershipFactory, QueueFactory

pytestmark = pytest.mark.django_db

CUSTOMER = "+447911123456"


@pytest.fixture(autouse=True)
def outbox_on(settings):
    settings.SANDBOX_OUTBOX = True


@pytest.fixture
def sms(tenant):
    return connector_save(
        tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100", queue=QueueFactory(tenant=tenant)
    )


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


def reply_sent(tenant, agent, body="Your parcel is on its way."):
    conversation = ConversationFactory(tenant=tenant, channel="sms", status=ConversationStatus.OPEN, assignee=agent)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=CUSTOMER, verified=True)
    message = message_post(
        actor=agent_actor_for(agent), conversation_id=conversation.pk, body=body, client_id="c-1"
    ).message
    assert delivery_attempt(delivery_id=message.delivery.pk) == "sent"
    return conversation, message


def test_the_outbox_shows_what_was_sent_as_the_customer_sees_it(agent_client, tenant, agent, sms):
    reply_sent(tenant, agent)
    page = agent_client.get(reverse("sandbox-outbox")).content.decode()
    assert CUSTOMER in page and "Your parcel is on its way." in page and "Delivered" in page
    assert SandboxMessage.objects.get().subject == ""  # an SMS has no subject


def test_a_reply_as_the_customer_reaches_the_conversation_through_the_webhook(agent_client, tenant, agent, sms):
    conversation, _ = reply_sent(tenant, agent)
    response = agent_client.post(
        reverse("sandbox-customer-writes"), {"channel": "sms", "address": CUSTOMER, "body": "Thanks! When?"}
    )
    assert response.status_code == 302
    last = Message.objects.filter(conversation=conversation).order_by("-seq").first()
    assert (last.sender_kind, last.body, last.channel) == (SenderKind.VISITOR, "Thanks! When?", "sms")
    written = SandboxMessage.objects.get(direction=SandboxDirection.IN)
    assert last.client_id == written.provider_id  # the id the sandbox gave it, as a provider's MessageSid


def test_writing_first_as_a_new_customer_starts_a_routed_conversation(agent_client, tenant, sms):
    agent_client.post(
        reverse("sandbox-customer-writes"), {"channel": "sms", "address": "+44 7400 123456", "body": "Hello?"}
    )
    conversation = Conversation.objects.get(tenant=tenant)
    assert (conversation.channel, conversation.status) == ("sms", "waiting")
    assert ConversationRoute.objects.get(conversation=conversation).queue_id == sms.queue_id


def test_a_malformed_customer_number_is_refused_and_nothing_is_kept(agent_client, tenant, sms):
    response = agent_client.post(
        reverse("sandbox-customer-writes"), {"channel": "sms", "address": "12", "body": "Hello?"}, follow=True
    )
    assert "international format" in response.content.decode()
    assert not SandboxMessage.objects.exists() and not Conversation.objects.exists()


def test_the_sandbox_webhook_takes_only_what_the_sandbox_signed(client, settings, tenant, sms):
    path = reverse("hooks-sandbox-inbound", kwargs={"key": sms.webhook_key})
    params = {"MessageSid": "SBIN1", "From": CUSTOMER, "To": sms.from_address, "Body": "Signed"}
    forged = {**params, "Body": "Forged"}
    assert client.post(path, params).status_code == 403
    bad = sandbox_signature(sms, settings.SITE_URL + path, params)
    assert client.post(path, forged, HTTP_X_SANDBOX_SIGNATURE=bad).status_code == 403
    assert not Message.objects.exists()
    good = sandbox_signature(sms, settings.SITE_URL + path, params)
    assert client.post(path, params, HTTP_X_SANDBOX_SIGNATURE=good).status_code == 200
    assert Message.objects.get().body == "Signed"


def test_marking_read_moves_the_agents_view_of_the_message(agent_client, tenant, agent, sms):
    _, message = reply_sent(tenant, agent)
    sent = SandboxMessage.objects.get(direction=SandboxDirection.OUT)
    agent_client.post(reverse("sandbox-mark-read", args=[sent.pk]))
    assert Message.objects.get(pk=message.pk).delivery_status == "read"


def test_another_tenants_sandbox_messages_are_out_of_reach(client, tenant, agent, sms, other_tenant):
    reply_sent(tenant, agent)
    sent = SandboxMessage.objects.get(direction=SandboxDirection.OUT)
    client.force_login(MembershipFactory(tenant=other_tenant).user)
    assert CUSTOMER not in client.get(reverse("sandbox-outbox")).content.decode()
    assert client.post(reverse("sandbox-mark-read", args=[sent.pk])).status_code == 404


def test_off_in_production_unless_asked_for(client, agent, settings, sms):
    settings.SANDBOX_OUTBOX = False
    client.force_login(agent)
    assert client.get(reverse("sandbox-outbox")).status_code == 404
    path = reverse("hooks-sandbox-inbound", kwargs={"key": sms.webhook_key})
    assert client.post(path, {"MessageSid": "x", "From": CUSTOMER}).status_code == 404


def test_people_who_are_not_signed_in_are_sent_to_sign_in(client):
    response = client.get(reverse("sandbox-outbox"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_demo_tenant_has_every_channel_on_the_sandbox(db):
    demo_seed(host="127.0.0.1", port=8000)
    from channels_switch.models import ChannelConnector

    assert sorted(ChannelConnector.objects.filter(tenant__slug="demo").values_list("kind", "provider")) == [
        ("email", "sandbox"),
        ("sms", "sandbox"),
        ("whatsapp", "sandbox"),
    ]


@pytest.mark.parametrize(
    ("channel", "sender", "address"),
    [("whatsapp", "+14155550111", "+447400123456"), ("email", "help@shop.example", "ada@example.org")],
)
def test_the_loop_on_whatsapp_and_email_too(agent_client, tenant, agent, channel, sender, address):
    connector_save(tenant=tenant, kind=channel, provider="sandbox", from_address=sender)
    agent_client.post(reverse("sandbox-customer-writes"), {"channel": channel, "address": address, "body": "Hi?"})
    conversation = Conversation.objects.get(tenant=tenant, channel=channel)
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.OPEN, assignee=agent)
    reply = message_post(
        actor=agent_actor_for(agent), conversation_id=conversation.pk, body="Hello!", client_id="r-1"
    ).message
    assert delivery_attempt(delivery_id=reply.delivery.pk) == "sent"
    sent = SandboxMessage.objects.get(direction=SandboxDirection.OUT)
    assert (sent.channel, sent.to_address, sent.body) == (channel, address, "Hello!")
    assert bool(sent.subject) is (channel == "email")  # only an email has a subject
