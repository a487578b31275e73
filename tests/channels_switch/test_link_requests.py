"""Link requests (seed 001): links that continue a contact's conversation on WhatsApp, SMS or email with a
one-time code; the first message carrying it links its address to the contact and the conversation goes on there,
history kept. Expired, used, unknown or another channel's codes are just text."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote

import pytest
from django.utils import timezone

from channels_switch.models import ChannelSwitch, Delivery, LinkRequest
from channels_switch.services import inbound_receive
from channels_switch.services.email import reply_address
from channels_switch.services.inbound_email import Mail, email_receive
from channels_switch.services.link_requests import link_request_create
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Contact, ContactIdentity
from contactcenter.services import contact_create, contact_identity_add
from tests.factories import ConversationFactory, WidgetFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_outbox")]

PHONE = "+447911123456"


@pytest.fixture
def chat(tenant, agent, connectors):
    widget = WidgetFactory(tenant=tenant)
    conversation = ConversationFactory(
        tenant=tenant, widget=widget, visitor_id="v-1", status=ConversationStatus.OPEN, assignee=agent
    )
    message_post(actor=agent_actor_for(agent), conversation_id=conversation.pk, body="How can I help?", client_id="a1")
    return conversation


def code_of(issued, channel: str) -> str:
    return next(link.code for link in issued.links if link.channel == channel)


def texted(connector, body: str, n: int, sender: str = PHONE) -> Conversation:
    inbound = inbound_receive(connector=connector, provider_id=f"SM{n}", sender=sender, body=body)
    return Conversation.objects.get(pk=inbound.conversation_id)


def test_links_open_each_app_with_the_code_prefilled_and_only_a_hash_is_kept(tenant, chat, connectors):
    issued = link_request_create(
        tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["whatsapp", "sms", "email"], created_by="API key"
    )
    assert issued.conversation == chat and issued.unavailable == {}
    urls = {link.channel: link.url for link in issued.links}
    whatsapp, sms, email = (code_of(issued, kind) for kind in ("whatsapp", "sms", "email"))
    assert urls["whatsapp"].startswith("https://wa.me/14155550111?text=")
    assert urls["sms"].startswith("sms:+14155550100?&body=")
    assert urls["email"].startswith(f"mailto:{reply_address(connectors['email'], chat.pk)}?subject=")
    for kind, code in (("whatsapp", whatsapp), ("sms", sms), ("email", email)):
        assert code in unquote(urls[kind])
    assert len({whatsapp, sms, email}) == 3
    stored = list(LinkRequest.objects.values_list("code_hash", flat=True))
    assert len(stored) == 3 and not any(code[3:7] in h for h in stored for code in (whatsapp, sms, email))


def test_a_channel_without_a_connector_is_listed_as_unavailable(tenant, chat, connectors):
    connectors["whatsapp"].enabled = False
    connectors["whatsapp"].save(update_fields=["enabled"])
    issued = link_request_create(
        tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["whatsapp", "sms"], created_by="x"
    )
    assert [link.channel for link in issued.links] == ["sms"]
    assert issued.unavailable == {"whatsapp": "No whatsapp channel is on."}


def test_the_first_text_with_the_code_moves_the_web_chat_there_and_links_the_number(tenant, chat, agent, connectors):
    issued = link_request_create(tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["sms"], created_by="x")
    code = code_of(issued, "sms")
    moved = texted(connectors["sms"], f"Hi, continuing here. My code is {code}.", 1)
    assert moved.pk == chat.pk
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address, chat.status, chat.assignee_id) == ("sms", PHONE, "open", agent.pk)
    identity = ContactIdentity.objects.get(value=PHONE)
    assert identity.contact_id == chat.contact_id and identity.verified
    switch = ChannelSwitch.objects.get(conversation=chat)
    assert (switch.from_channel, switch.to_channel, switch.by) == ("web", "sms", "integrator")
    bodies = list(Message.objects.filter(conversation=chat).order_by("seq").values_list("sender_kind", "body"))
    assert bodies[0] == (SenderKind.AGENT, "How can I help?")  # the history stays
    assert bodies[-1] == (SenderKind.VISITOR, f"Hi, continuing here. My code is {code}.")
    assert "continued this conversation by SMS" in bodies[-2][1]
    # The number is proved: the agent's reply goes out at once.
    message_post(actor=agent_actor_for(agent), conversation_id=chat.pk, body="Great, go on.", client_id="a2")
    assert Delivery.objects.filter(message__conversation=chat, to_address=PHONE).exists()
    assert LinkRequest.objects.get().used_address == PHONE


def test_a_used_an_expired_or_another_channels_code_is_just_text(tenant, chat, connectors):
    issued = link_request_create(
        tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["sms", "whatsapp"], created_by="x"
    )
    sms_code, whatsapp_code = code_of(issued, "sms"), code_of(issued, "whatsapp")
    texted(connectors["sms"], f"code {sms_code}", 1)
    again = texted(connectors["sms"], f"code {sms_code}", 2, sender="+447911123457")  # used: someone else's text
    assert again.pk != chat.pk and again.contact_id != chat.contact_id
    wrong = texted(connectors["sms"], f"code {whatsapp_code}", 3, sender="+447911123458")  # WhatsApp's code by SMS
    assert wrong.contact_id != chat.contact_id
    LinkRequest.objects.filter(connector=connectors["whatsapp"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    late = inbound_receive(
        connector=connectors["whatsapp"], provider_id="WA1", sender="+447911123459", body=whatsapp_code
    )
    assert Conversation.objects.get(pk=late.conversation_id).contact_id != chat.contact_id
    assert not ContactIdentity.objects.filter(contact_id=chat.contact_id, value__in=["+447911123457", "+447911123459"])


def test_a_number_already_someone_elses_is_merged_into_the_contact(tenant, connectors):
    ada = contact_create(tenant=tenant, name="Ada")
    contact_identity_add(contact=ada, kind="email", value="ada@example.org", verified=True)
    earlier = texted(connectors["sms"], "an earlier text", 1)
    closed = Conversation.objects.filter(pk=earlier.pk).update(status=ConversationStatus.CLOSED)
    assert closed == 1
    issued = link_request_create(tenant_id=tenant.pk, contact_id=ada.pk, channels=["sms"], created_by="x")
    assert issued.conversation is None  # Ada has no open conversation: the text starts one
    started = texted(connectors["sms"], code_of(issued, "sms"), 2)
    assert started.contact_id == ada.pk
    assert not Contact.objects.filter(pk=earlier.contact_id).exists()
    assert Conversation.objects.get(pk=earlier.pk).contact_id == ada.pk
    assert ContactIdentity.objects.get(value=PHONE).contact_id == ada.pk


def test_an_email_with_the_code_continues_the_chat_by_email(tenant, chat, connectors):
    issued = link_request_create(tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["email"], created_by="x")
    code = code_of(issued, "email")
    mail = Mail(
        sender="Ada@Example.org",
        sender_name="Ada",
        recipients=["help@shop.example"],
        subject="Continuing our conversation",
        text=f"My code is {code}.",
        message_id="<m1@example.org>",
        referenced=[],
        files=[],
    )
    inbound = email_receive(connector=connectors["email"], mail=mail)
    assert inbound.conversation_id == chat.pk
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address) == ("email", "ada@example.org")


def test_refusals(tenant, other_tenant, chat, connectors):
    theirs = contact_create(tenant=other_tenant, name="Theirs")
    with pytest.raises(NotFound):
        link_request_create(tenant_id=tenant.pk, contact_id=theirs.pk, channels=["sms"], created_by="x")
    with pytest.raises(ApplicationError) as bad:
        link_request_create(tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["fax"], created_by="x")
    assert bad.value.code == "invalid" and "channels" in bad.value.fields
    other = ConversationFactory(tenant=tenant)
    with pytest.raises(ApplicationError) as foreign:
        link_request_create(
            tenant_id=tenant.pk, contact_id=chat.contact_id, channels=["sms"], conversation_id=other.pk, created_by="x"
        )
    assert "conversation_id" in foreign.value.fields
    assert not LinkRequest.objects.exists()
