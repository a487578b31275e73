"""The console's "Send a link to continue on…" (docs/protocol.md §7, 1.20): `GET|POST
/console/api/conversations/<id>/links` over `channels_switch.services.link_requests.link_request_send`. The links are
made and posted into the web chat as one `link_request.sent` notice, in one transaction; only the assignee of a live
web chat may, and only on channels that are on. The move a link's code makes is marked `via: link`, so the widget
keeps the chat live."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
from django.test import Client

from channels_switch.models import LinkRequest
from channels_switch.services import inbound_receive
from chat.models import Channel, ConversationStatus, Message
from chat.services import visitor_lease_renew
from chat.tokens import visitor_token_issue
from tests.factories import ConversationFactory, MembershipFactory, TenantFactory, WidgetFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_outbox")]

PHONE = "+447911123456"


@pytest.fixture
def chat(tenant, agent, connectors):
    return ConversationFactory(
        tenant=tenant, widget=WidgetFactory(tenant=tenant), status=ConversationStatus.OPEN, assignee=agent
    )


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(conversation_id: int) -> str:
    return f"/console/api/conversations/{conversation_id}/links"


def post(client: Client, conversation_id: int, body: object):
    return client.post(url(conversation_id), data=json.dumps(body), content_type="application/json")


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


def notices(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, event="link_request.sent"))


def test_the_menu_lists_the_channels_that_are_on_in_a_fixed_order(agent, chat, connectors):
    answer = signed_in(agent).get(url(chat.pk)).json()
    assert [c["channel"] for c in answer["channels"]] == ["whatsapp", "sms", "email"]
    assert answer["reason"] == ""
    connectors["whatsapp"].enabled = False
    connectors["whatsapp"].save(update_fields=["enabled"])
    assert [c["channel"] for c in signed_in(agent).get(url(chat.pk)).json()["channels"]] == ["sms", "email"]


def test_sending_makes_the_links_and_posts_them_into_the_chat(agent, chat):
    response = post(signed_in(agent), chat.pk, {"channels": ["whatsapp", "sms"]})
    assert response.status_code == 201, response.content
    answer = response.json()
    assert [link["channel"] for link in answer["links"]] == ["whatsapp", "sms"]
    assert answer["unavailable"] == {}
    requests = LinkRequest.objects.filter(conversation=chat)
    assert requests.count() == 2 and {r.created_by for r in requests} == {agent.get_full_name() or agent.email}
    [notice] = notices(chat)
    assert notice.pk == answer["message_id"] and notice.sender_kind == "system" and not notice.is_private
    assert notice.event_data["agent_name"] == (agent.first_name or "Agent")
    sent = notice.event_data["links"]
    assert [(link["channel"], link["label"]) for link in sent] == [
        ("whatsapp", "Continue on WhatsApp"),
        ("sms", "Continue by SMS"),
    ]
    assert [link["url"] for link in sent] == [link["url"] for link in answer["links"]]
    assert sent[0]["url"].startswith("https://wa.me/14155550111?text=")
    assert sent[1]["url"].startswith("sms:+14155550100?&body=")
    assert "continue this conversation on WhatsApp or SMS" in notice.body


def test_the_code_of_a_sent_link_moves_the_chat_marked_as_a_link_move(agent, chat, connectors):
    sent = post(signed_in(agent), chat.pk, {"channels": ["whatsapp"]}).json()
    code = unquote(sent["links"][0]["url"]).rsplit("My code is ", 1)[1].rstrip(".")
    inbound_receive(connector=connectors["whatsapp"], provider_id="WA1", sender=PHONE, body=f"Hi! {code}")
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address, chat.status) == ("whatsapp", PHONE, ConversationStatus.OPEN)
    switched = Message.objects.get(conversation=chat, event="conversation.switched")
    assert switched.event_data["via"] == "link" and switched.event_data["to"] == "whatsapp"
    # The visitor's web connection no longer watches it: a dropped socket never closes or moves it.
    assert not visitor_lease_renew(tenant_id=chat.tenant_id, conversation_id=chat.pk, seconds=30)
    # Nothing more can be sent into it as a web chat.
    refused = error(post(signed_in(agent), chat.pk, {"channels": ["sms"]}), 409)
    assert refused["code"] == "links_unavailable" and "WhatsApp" in refused["message"]
    # A reloaded widget is told to keep showing it live (the customer writes from their app now).
    token = visitor_token_issue(tenant_id=chat.tenant_id, widget_id=chat.widget_id, visitor_id=chat.visitor_id)
    session = Client().get(f"/widget/api/{chat.widget.public_key}/session", HTTP_X_VISITOR_TOKEN=token).json()
    assert session["conversation"] is None
    assert session["moved"]["id"] == chat.pk and session["following"] is True


def test_another_tenants_conversation_is_not_found(chat):
    stranger = MembershipFactory(tenant=TenantFactory(name="Globex")).user
    assert error(post(signed_in(stranger), chat.pk, {"channels": ["sms"]}), 404)["code"] == "not_found"
    assert error(signed_in(stranger).get(url(chat.pk)), 404)["code"] == "not_found"
    assert not LinkRequest.objects.exists() and not notices(chat)


def test_only_the_assignee_sends_links(tenant, chat):
    colleague = MembershipFactory(tenant=tenant).user
    chat.participants.add(colleague)  # in the chat, writing in it, but not its assignee
    refused = error(post(signed_in(colleague), chat.pk, {"channels": ["sms"]}), 403)
    assert refused == {
        **refused,
        "code": "forbidden",
        "message": "Only the agent assigned to this chat can send it links.",
    }
    assert signed_in(colleague).get(url(chat.pk)).json() == {"channels": [], "reason": refused["message"]}
    supervisor = MembershipFactory(tenant=tenant, role="supervisor").user  # reads it, takes no part
    assert error(post(signed_in(supervisor), chat.pk, {"channels": ["sms"]}), 403)["code"] == "forbidden"
    assert not LinkRequest.objects.exists() and not notices(chat)


def test_a_closed_or_non_web_chat_is_refused_with_the_reason(agent, chat):
    chat.status = ConversationStatus.CLOSED
    chat.save(update_fields=["status"])
    closed = error(post(signed_in(agent), chat.pk, {"channels": ["sms"]}), 409)
    assert closed["code"] == "conversation_closed" and "closed" in closed["message"]
    chat.status, chat.channel, chat.channel_address = ConversationStatus.OPEN, Channel.SMS, PHONE
    chat.save(update_fields=["status", "channel", "channel_address"])
    elsewhere = error(post(signed_in(agent), chat.pk, {"channels": ["whatsapp"]}), 409)
    assert elsewhere["code"] == "links_unavailable" and "by SMS already" in elsewhere["message"]
    assert signed_in(agent).get(url(chat.pk)).json()["channels"] == []
    assert not LinkRequest.objects.exists() and not notices(chat)


def test_no_channel_on_is_a_clear_error_and_writes_nothing(agent, chat, connectors):
    connectors["whatsapp"].enabled = False
    connectors["whatsapp"].save(update_fields=["enabled"])
    refused = error(post(signed_in(agent), chat.pk, {"channels": ["whatsapp"]}), 409)
    assert refused["code"] == "links_unavailable" and "Settings → Channels" in refused["message"]
    assert refused["fields"] == {"channels": ["No whatsapp channel is on."]}
    for connector in connectors.values():
        connector.enabled = False
        connector.save(update_fields=["enabled"])
    assert signed_in(agent).get(url(chat.pk)).json() == {
        "channels": [],
        "reason": "No WhatsApp, SMS or email channel is on.",
    }
    assert not LinkRequest.objects.exists() and not notices(chat)


def test_a_partly_available_request_sends_what_it_can_and_names_the_rest(agent, chat, connectors):
    connectors["email"].enabled = False
    connectors["email"].save(update_fields=["enabled"])
    answer = post(signed_in(agent), chat.pk, {"channels": ["sms", "email"]}).json()
    assert [link["channel"] for link in answer["links"]] == ["sms"]
    assert answer["unavailable"] == {"email": "No email channel is on."}
    assert [link["channel"] for link in notices(chat)[0].event_data["links"]] == ["sms"]


@pytest.mark.parametrize("body", [{}, {"channels": "sms"}, {"channels": [1]}, {"channels": []}, {"channels": ["fax"]}])
def test_a_bad_body_is_invalid(agent, chat, body):
    assert error(post(signed_in(agent), chat.pk, body), 400)["code"] == "invalid"
    assert not LinkRequest.objects.exists()


def test_signed_out_is_401(chat):
    assert error(post(Client(), chat.pk, {"channels": ["sms"]}), 401)["code"] == "not_authenticated"
