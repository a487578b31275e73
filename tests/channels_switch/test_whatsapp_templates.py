"""WhatsApp templates: a tenant's approved templates (settings, with their rules), and an agent sending one on a
WhatsApp conversation outside the 24-hour window: stored as the rendered text, with a delivery the relay sends as
the template (Twilio: ContentSid + ContentVariables, mocked at its HTTP edge only; the sandbox: the rendered
text in its outbox), still refused to a customer who opted out."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_switch.models import Delivery, SandboxMessage, WhatsAppTemplate
from channels_switch.services import (
    connector_save,
    delivery_attempt,
    inbound_receive,
    whatsapp_placeholder_count,
    whatsapp_template_save,
    whatsapp_template_send,
)
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity
from tests.channels_switch.twilio_support import ACCOUNT_SID, CUSTOMER, twilio_connector
from tests.factories import MembershipFactory, WhatsAppTemplateFactory

pytestmark = pytest.mark.django_db

MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CONTENT_SID = "HX" + "0123456789abcdef" * 2
ORDER_UPDATE = "Hi {{1}}, your order {{2}} has shipped."


@pytest.fixture
def sandbox(tenant):
    return connector_save(tenant=tenant, kind="whatsapp", provider="sandbox", from_address="+14155550111")


def customer_wrote(connector, agent, *, hours_ago: float) -> Conversation:
    """A WhatsApp conversation the customer started `hours_ago`, assigned to `agent`."""
    inbound = inbound_receive(connector=connector, provider_id="SM1", sender=CUSTOMER, body="Where is my order?")
    conversation = Conversation.objects.get(pk=inbound.conversation_id)
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.OPEN, assignee=agent)
    return conversation


def send(agent, conversation, template, variables, client_id="t-1"):
    return whatsapp_template_send(
        actor=agent_actor_for(agent),
        conversation_id=conversation.pk,
        template_id=template.pk,
        variables=variables,
        client_id=client_id,
    )


def refused(call) -> ApplicationError:
    with pytest.raises(ApplicationError) as error:
        call()
    return error.value


# --- the template's rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "count"),
    [("No placeholders at all.", 0), (ORDER_UPDATE, 2), ("{{1}}, again {{1}}, then {{2}}", 2), ("{{2}} {{1}}", 2)],
)
def test_placeholders_are_counted(body, count):
    assert whatsapp_placeholder_count(body) == count


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"body": "Hi {{1}}, order {{3}}"}, "body", "{{2}} is missing"),
        ({"body": "Hi {{name}}"}, "body", "{{name}} is not one"),
        ({"body": "Hi {{ 1 }}"}, "body", "{{ 1 }} is not one"),
        ({"body": "Hi {{0}}"}, "body", "{{0}} is not one"),
        ({"body": "Hi {{1}"}, "body", "check the braces"),
        ({"body": "x" * 1025}, "body", "at most 1024 characters"),
        ({"body": "   "}, "body", "Enter the template's text"),
        ({"name": "Order Update"}, "name", "lowercase letters, digits and underscores"),
        ({"language": "english"}, "language", "en_US"),
        ({"content_sid": "HX123"}, "content_sid", "HX followed by 32 characters"),
    ],
)
def test_a_template_is_refused_with_the_reason_next_to_its_field(tenant, fields, field, words):
    values = {"name": "order_update", "language": "en", "body": ORDER_UPDATE, "content_sid": "", **fields}
    error = refused(lambda: whatsapp_template_save(tenant=tenant, **values))
    assert error.code == "invalid" and words in error.fields[field][0]
    assert not WhatsAppTemplate.objects.exists()


def test_on_twilio_a_template_needs_the_content_sid_of_its_approval(tenant):
    twilio_connector(tenant, kind="whatsapp")
    error = refused(lambda: whatsapp_template_save(tenant=tenant, name="order_update", body=ORDER_UPDATE))
    assert "Content SID" in error.fields["content_sid"][0]
    saved = whatsapp_template_save(tenant=tenant, name="order_update", body=ORDER_UPDATE, content_sid=CONTENT_SID)
    assert (saved.content_sid, saved.language, saved.enabled) == (CONTENT_SID, "en", True)


def test_one_name_per_language_and_tenant(tenant, other_tenant):
    whatsapp_template_save(tenant=tenant, name="order_update", body=ORDER_UPDATE)
    error = refused(lambda: whatsapp_template_save(tenant=tenant, name="order_update", body="Other {{1}}"))
    assert "already" in error.fields["name"][0]
    whatsapp_template_save(tenant=tenant, name="order_update", language="pt_BR", body="Olá {{1}}")
    whatsapp_template_save(tenant=other_tenant, name="order_update", body=ORDER_UPDATE)
    assert WhatsAppTemplate.objects.count() == 3


def test_the_settings_page_creates_a_template_and_shows_errors_by_their_field(client, tenant, admin):
    client.force_login(admin)
    url = reverse("settings-whatsapp-templates-create")
    form = {"name": "order_update", "language": "en", "body": "Hi {{1}}, order {{3}}", "enabled": "on"}
    page = client.post(url, form)
    assert page.status_code == 200
    assert "{{2}} is missing" in page.content.decode()
    assert not WhatsAppTemplate.objects.exists()
    done = client.post(url, {**form, "body": ORDER_UPDATE})
    assert done.status_code == 302 and done["Location"] == reverse("settings-whatsapp-templates-list")
    listing = client.get(done["Location"]).content.decode()
    assert "order_update" in listing and "Approved by the sandbox" in listing
    assert WhatsAppTemplate.objects.get().tenant == tenant


# --- sending one ---------------------------------------------------------------------------------------------


def test_outside_the_window_free_text_is_refused_and_a_template_goes(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    free_text = refused(
        lambda: message_post(
            actor=agent_actor_for(agent), conversation_id=conversation.pk, body="Still there?", client_id="f-1"
        )
    )
    assert free_text.code == "outside_whatsapp_window"

    result = send(agent, conversation, template, {"1": "Jane", "2": "A-1042"})
    message = result.message
    assert result.created
    assert (message.body, message.sender_kind, message.channel) == (
        "Hi Jane, your order A-1042 has shipped.",
        SenderKind.AGENT,
        "whatsapp",
    )
    delivery = Delivery.objects.get(message=message)
    assert (delivery.template_id, delivery.template_variables) == (template.pk, {"1": "Jane", "2": "A-1042"})
    assert (delivery.state, delivery.to_address) == ("pending", CUSTOMER)


def test_a_resend_of_the_same_send_stores_nothing_new(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    first = send(agent, conversation, template, {"1": "Jane", "2": "A-1042"})
    template.enabled = False
    template.save()
    again = send(agent, conversation, template, {"1": "Jane", "2": "A-1042"})
    assert (again.created, again.message.pk) == (False, first.message.pk)
    assert Delivery.objects.count() == 1


@pytest.mark.parametrize(
    ("variables", "field", "words"),
    [
        ({"1": "Jane"}, "variables.2", "Fill in {{2}}"),
        ({"1": "Jane", "2": "   "}, "variables.2", "Fill in {{2}}"),
        ({"1": "Jane", "2": "A-1042", "3": "extra"}, "variables.3", "has no {{3}}"),
        ({"1": "Jane", "2": "x" * 201}, "variables.2", "at most 200 characters"),
        ({"1": "Jane\nDoe", "2": "A-1042"}, "variables.1", "line breaks"),
        ({"1": "Jane\tDoe", "2": "A-1042"}, "variables.1", "tabs"),
        ({"1": "Jane     Doe", "2": "A-1042"}, "variables.1", "spaces in a row"),
    ],
)
def test_exactly_the_placeholders_variables_each_one_short_line(tenant, agent, sandbox, variables, field, words):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    error = refused(lambda: send(agent, conversation, template, variables))
    assert error.code == "invalid" and words in error.fields[field][0]
    assert not Message.objects.filter(sender_kind=SenderKind.AGENT).exists()
    assert not Delivery.objects.exists()


def test_another_tenants_template_is_refused(tenant, other_tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    theirs = WhatsAppTemplateFactory(tenant=other_tenant, body=ORDER_UPDATE)
    error = refused(lambda: send(agent, conversation, theirs, {"1": "Jane", "2": "A-1042"}))
    assert error.code == "invalid" and "no such WhatsApp template" in error.message
    assert not Delivery.objects.exists()


def test_a_template_turned_off_or_on_another_channel_is_refused(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    off = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE, enabled=False)
    assert "turned off" in refused(lambda: send(agent, conversation, off, {"1": "J", "2": "A"})).message
    sms = connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    inbound = inbound_receive(connector=sms, provider_id="SM2", sender=CUSTOMER, body="Hi")
    on_sms = Conversation.objects.get(pk=inbound.conversation_id)
    Conversation.objects.filter(pk=on_sms.pk).update(status=ConversationStatus.OPEN, assignee=agent)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    error = refused(lambda: send(agent, on_sms, template, {"1": "J", "2": "A"}))
    assert "WhatsApp conversations only" in error.message


def test_only_who_may_write_in_the_conversation_sends(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    colleague = MembershipFactory(tenant=tenant, role="agent").user
    error = refused(lambda: send(colleague, conversation, template, {"1": "J", "2": "A"}))
    assert error.code == "not_found"


def test_opt_out_still_refuses_a_template(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    ContactIdentity.objects.filter(tenant=tenant, value=CUSTOMER).update(opted_out_at=timezone.now())
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    error = refused(lambda: send(agent, conversation, template, {"1": "Jane", "2": "A-1042"}))
    assert error.code == "opted_out"
    assert not Message.objects.filter(sender_kind=SenderKind.AGENT).exists()


def test_after_a_switch_a_template_waits_for_the_customers_answer_too(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    Message.objects.filter(conversation=conversation).update(channel="web")  # they wrote on the web chat only
    Conversation.objects.filter(pk=conversation.pk).update(channel_address=CUSTOMER)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    error = refused(lambda: send(agent, conversation, template, {"1": "Jane", "2": "A-1042"}))
    assert error.code == "awaiting_customer"


# --- the relay sends it as a template ------------------------------------------------------------------------


def test_twilio_gets_the_content_sid_and_its_variables(tenant, agent, mocked):
    connector = twilio_connector(tenant, kind="whatsapp", from_address="+14155550111")
    conversation = customer_wrote(connector, agent, hours_ago=30)
    template = whatsapp_template_save(tenant=tenant, name="order_update", body=ORDER_UPDATE, content_sid=CONTENT_SID)
    mocked.post(MESSAGES_URL, json={"sid": "SM" + "b" * 32, "status": "queued", "num_segments": "1"}, status=201)
    message = send(agent, conversation, template, {"1": "Zoë", "2": "A-1042"}).message
    delivery = Delivery.objects.get(message=message)
    assert delivery.content_sid == CONTENT_SID

    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    (call,) = mocked.calls
    sent = parse_qs(call.request.body)
    assert sent == {
        "To": [f"whatsapp:{CUSTOMER}"],
        "From": ["whatsapp:+14155550111"],
        "ContentSid": [CONTENT_SID],
        "ContentVariables": [json.dumps({"1": "Zoë", "2": "A-1042"}, ensure_ascii=False)],
        "StatusCallback": [sent["StatusCallback"][0]],
    }
    assert json.loads(sent["ContentVariables"][0]) == {"1": "Zoë", "2": "A-1042"}
    assert "Body" not in sent
    message.refresh_from_db()
    assert message.body == "Hi Zoë, your order A-1042 has shipped." and message.delivery_status == "sending"


def test_on_twilio_a_template_without_its_content_sid_is_refused(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)  # saved while on the sandbox
    twilio_connector(tenant, kind="whatsapp", instance=sandbox)  # the channel moves to Twilio
    error = refused(lambda: send(agent, conversation, template, {"1": "Jane", "2": "A-1042"}))
    assert "no Twilio Content SID" in error.message


def test_the_sandbox_outbox_shows_the_rendered_text(tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=48)
    template = WhatsAppTemplateFactory(tenant=tenant, body=ORDER_UPDATE)
    message = send(agent, conversation, template, {"1": "Jane", "2": "A-1042"}).message
    assert delivery_attempt(delivery_id=Delivery.objects.get(message=message).pk) == "sent"
    outbox = SandboxMessage.objects.get()
    assert (outbox.to_address, outbox.body) == (CUSTOMER, "Hi Jane, your order A-1042 has shipped.")
    message.refresh_from_db()
    assert message.delivery_status == "delivered"


# --- what the console is told --------------------------------------------------------------------------------


def test_the_console_is_told_the_window_and_the_templates_it_may_send(client, tenant, agent, sandbox):
    conversation = customer_wrote(sandbox, agent, hours_ago=30)
    template = WhatsAppTemplateFactory(tenant=tenant, name="order_update", body=ORDER_UPDATE)
    WhatsAppTemplateFactory(tenant=tenant, name="old_one", enabled=False)
    client.force_login(agent)
    url = reverse("console-api-whatsapp", kwargs={"conversation_id": conversation.pk})
    data = client.get(url).json()
    assert data["window"]["open"] is False and "more than 24 hours old" in data["reason"]
    assert data["templates"] == [
        {"id": template.pk, "name": "order_update", "language": "en", "body": ORDER_UPDATE, "variables": 2}
    ]
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=2))
    data = client.get(url).json()
    assert data["window"]["open"] is True and data["reason"] == "" and data["window"]["ends_at"]

    colleague = MembershipFactory(tenant=tenant, role="agent").user
    client.force_login(colleague)
    assert client.get(url).status_code == 404
