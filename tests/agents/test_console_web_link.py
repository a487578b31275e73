"""The console's "Send a link to continue on the web" (docs/auth-codes.md, protocol 1.21): `GET|POST
/console/api/conversations/<id>/web-link` over `channels_switch.services.web_links.web_link_send`. The assignee of a
conversation on SMS, WhatsApp or email sends, as their own message on that channel, a link to the widget's hosted
chat page with a fresh auth code; the code, the message and its delivery row are one transaction, so a refused
message leaves no code. Opening the link signs the browser in as the contact and the conversation goes on there."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from django.test import Client

from channels_switch.models import AuthCode, Delivery
from channels_switch.services import inbound_receive
from channels_switch.services.auth_codes import auth_code_hash
from chat.models import Channel, Conversation, ConversationStatus, Message, Widget
from tests.factories import ContactFactory, ConversationFactory, MembershipFactory, WidgetFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_outbox")]

PHONE = "+447911123456"


@pytest.fixture
def sms_chat(tenant, agent, connectors, widget):
    """A conversation the customer started by SMS, answered by the agent."""
    conversation_id = inbound_receive(
        connector=connectors["sms"], provider_id="SM1", sender=PHONE, body="Where is my parcel?"
    ).conversation_id
    Conversation.objects.filter(pk=conversation_id).update(status=ConversationStatus.OPEN, assignee=agent)
    return Conversation.objects.get(pk=conversation_id)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(conversation_id: int) -> str:
    return f"/console/api/conversations/{conversation_id}/web-link"


def post(client: Client, conversation_id: int):
    return client.post(url(conversation_id), data="{}", content_type="application/json")


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


def nothing_written() -> bool:
    return not AuthCode.objects.exists() and not Message.objects.filter(body__contains="/chat/").exists()


def test_the_link_goes_as_the_agents_message_and_signs_the_customer_in_on_the_web(agent, sms_chat, widget):
    assert signed_in(agent).get(url(sms_chat.pk)).json() == {"available": True, "reason": ""}
    response = post(signed_in(agent), sms_chat.pk)
    assert response.status_code == 201, response.content
    answer = response.json()
    link = urlsplit(answer["url"])
    assert link.path == f"/chat/{widget.public_key}/" and link.fragment.startswith("code=")
    code = link.fragment.removeprefix("code=")
    # The agent's own message on SMS, with its outbox row, carries the link; only the code's hash is kept.
    message = Message.objects.get(pk=answer["message_id"])
    assert (message.sender_kind, message.sender_user_id, message.channel) == ("agent", agent.pk, Channel.SMS)
    assert answer["url"] in message.body and "works once" in message.body
    delivery = Delivery.objects.get(message=message)
    assert (delivery.channel, delivery.to_address) == ("sms", PHONE)
    [auth_code] = AuthCode.objects.all()
    assert auth_code.contact_id == sms_chat.contact_id and auth_code.code_hash == auth_code_hash(code)

    # The hosted page is the widget's; the code redeems there once and brings the conversation to the web.
    page = Client().get(link.path)
    assert page.status_code == 200 and f'data-widget="{widget.public_key}"' in page.content.decode()
    redeemed = Client().post(
        f"/widget/api/{widget.public_key}/auth-code", data=json.dumps({"code": code}), content_type="application/json"
    )
    assert redeemed.status_code == 200, redeemed.content
    assert redeemed.json()["conversation"]["id"] == sms_chat.pk
    sms_chat.refresh_from_db()
    assert sms_chat.channel == Channel.WEB
    again = Client().post(
        f"/widget/api/{widget.public_key}/auth-code", data=json.dumps({"code": code}), content_type="application/json"
    )
    assert error(again, 400)["code"] == "auth_code_used"
    # Now a web chat: no more web links.
    refused = error(post(signed_in(agent), sms_chat.pk), 409)
    assert refused["code"] == "web_link_unavailable" and "on the web already" in refused["message"]


def test_a_message_the_channel_refuses_leaves_no_code(tenant, agent, connectors, widget):
    """WhatsApp outside 24 hours of the customer's last message takes templates only: nothing is written."""
    contact = ContactFactory(tenant=tenant)
    chat = ConversationFactory(
        tenant=tenant, contact=contact, channel=Channel.WHATSAPP, status=ConversationStatus.OPEN, assignee=agent
    )
    refused = error(post(signed_in(agent), chat.pk), 409)
    assert refused["code"] == "outside_whatsapp_window"
    assert nothing_written()


def test_refusals_say_why_and_write_nothing(tenant, agent, supervisor, sms_chat):
    # A supervisor sees the conversation, but the link is the assignee's to send.
    assert error(post(signed_in(supervisor), sms_chat.pk), 403)["code"] == "forbidden"
    assert signed_in(agent).get(url(sms_chat.pk)).json()["available"] is True
    Conversation.objects.filter(pk=sms_chat.pk).update(status=ConversationStatus.CLOSED)
    closed = error(post(signed_in(agent), sms_chat.pk), 409)
    assert closed["code"] == "conversation_closed"
    assert signed_in(agent).get(url(sms_chat.pk)).json() == {"available": False, "reason": closed["message"]}
    assert nothing_written()


def test_without_a_widget_there_is_no_web_chat_to_continue_in(tenant, agent, sms_chat):
    Conversation.objects.filter(pk=sms_chat.pk).update(widget=None)
    Widget.objects.filter(tenant=tenant).delete()
    refused = error(post(signed_in(agent), sms_chat.pk), 409)
    assert refused["code"] == "web_link_unavailable" and "Settings → Widgets" in refused["message"]
    assert nothing_written()


def test_another_tenants_conversation_is_not_found(other_tenant, sms_chat):
    outsider = MembershipFactory(tenant=other_tenant).user
    assert error(post(signed_in(outsider), sms_chat.pk), 404)["code"] == "not_found"
    assert error(signed_in(outsider).get(url(sms_chat.pk)), 404)["code"] == "not_found"
    assert nothing_written()


def test_signed_out_is_401(sms_chat):
    assert error(post(Client(), sms_chat.pk), 401)["code"] == "not_authenticated"


def test_the_hosted_page_of_an_unknown_widget_is_404_and_a_known_one_is_not_framed(widget):
    assert Client().get("/chat/wk_nope/").status_code == 404
    page = Client().get(f"/chat/{widget.public_key}/")
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert 'data-init="manual"' in page.content.decode()


def test_a_conversation_without_a_widget_links_to_the_tenants_first_widget(tenant, agent, sms_chat, widget):
    Conversation.objects.filter(pk=sms_chat.pk).update(widget=None)
    WidgetFactory(tenant=tenant)  # a later one
    answer = post(signed_in(agent), sms_chat.pk).json()
    assert urlsplit(answer["url"]).path == f"/chat/{widget.public_key}/"
