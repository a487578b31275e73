"""Auth codes (docs/auth-codes.md): `POST /api/v1/contacts/{id}/auth-codes/` creates one; the widget redeems it at
`POST /widget/api/<key>/auth-code`, which signs its visitor in as the contact, with the contact's history, and
brings an open SMS conversation back to the web."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from channels_switch.models import AuthCode, ChannelSwitch, SwitchedBy
from channels_switch.services.auth_codes import auth_code_create, auth_code_minutes_set, auth_code_redeem
from chat.models import Channel, ConversationStatus, SenderKind
from chat.tokens import visitor_token_read
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity, WebhookEvent
from contactcenter.services.webhooks_out import webhook_subscription_create
from tests.factories import ContactFactory, ConversationFactory, MessageFactory, WidgetFactory

pytestmark = pytest.mark.django_db


def create(client, contact_id):
    return client.post(f"/api/v1/contacts/{contact_id}/auth-codes/", format="json")


def redeem(widget, code, *, ip="203.0.113.7"):
    return Client(REMOTE_ADDR=ip).post(
        f"/widget/api/{widget.public_key}/auth-code", data={"code": code}, content_type="application/json"
    )


def error_code(response):
    return response.json()["error"]["code"]


def sms_conversation(contact, status=ConversationStatus.OPEN):
    chat = ConversationFactory(
        tenant=contact.tenant,
        contact=contact,
        widget=None,
        visitor_id="",
        channel=Channel.SMS,
        channel_address="+14155550123",
        status=status,
    )
    MessageFactory(tenant=contact.tenant, conversation=chat, body="Is my order on its way?")
    MessageFactory(tenant=contact.tenant, conversation=chat, body="Yes, it ships today.", sender_kind=SenderKind.AGENT)
    return chat


def test_an_integrator_creates_a_code_that_lives_the_tenants_lifetime_and_only_its_hash_is_kept(
    tenant, api_client, admin_session
):
    contact = ContactFactory(tenant=tenant)
    response = create(api_client, contact.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["contact_id"] == contact.pk and body["expires_in_minutes"] == 10 and len(body["code"]) >= 32
    row = AuthCode.objects.get()
    assert row.code_hash == hashlib.sha256(body["code"].encode()).hexdigest()
    assert body["code"] not in {row.code_hash, row.created_by}
    assert row.created_by.startswith("API key tests")
    assert timedelta(minutes=9) < row.expires_at - timezone.now() <= timedelta(minutes=10)
    auth_code_minutes_set(tenant_id=tenant.pk, minutes=3)
    later = create(admin_session, contact.pk).json()
    assert later["expires_in_minutes"] == 3
    assert AuthCode.objects.get(code_hash=hashlib.sha256(later["code"].encode()).hexdigest()).expires_at <= (
        timezone.now() + timedelta(minutes=3)
    )


def test_the_lifetime_is_refused_outside_1_to_1440_minutes(tenant):
    for minutes in (0, 1441):
        with pytest.raises(ApplicationError) as refused:
            auth_code_minutes_set(tenant_id=tenant.pk, minutes=minutes)
        assert "auth_code_minutes" in refused.value.fields


def test_another_tenants_contact_is_not_found_and_credentials_are_needed(tenant, other_api_client, client):
    contact = ContactFactory(tenant=tenant)
    assert create(other_api_client, contact.pk).status_code == 404
    assert client.post(f"/api/v1/contacts/{contact.pk}/auth-codes/").status_code in (401, 403)
    assert not AuthCode.objects.exists()


def test_a_code_signs_the_visitor_in_as_the_contact_once(tenant, api_client, widget):
    contact = ContactFactory(tenant=tenant, name="Jane Doe")
    code = create(api_client, contact.pk).json()["code"]
    response = redeem(widget, code)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["conversation"] is None
    token = visitor_token_read(body["token"])
    assert token is not None and token.visitor_id == body["visitor_id"] and token.widget_id == widget.pk
    identity = ContactIdentity.objects.get(kind="web", value=body["visitor_id"])
    assert identity.contact_id == contact.pk and identity.verified
    # A start with that token is the contact's new conversation.
    started = Client().post(
        f"/widget/api/{widget.public_key}/sessions",
        data={"message": "Hello again", "answers": {"name": "Jane"}},
        content_type="application/json",
        HTTP_X_VISITOR_TOKEN=body["token"],
    )
    assert started.status_code == 201, started.content
    assert started.json()["conversation"]["id"] in set(contact_conversation_ids(contact))
    again = redeem(widget, code)
    assert again.status_code == 400 and error_code(again) == "auth_code_used"


def contact_conversation_ids(contact):
    from chat.models import Conversation

    return Conversation.objects.filter(contact=contact).values_list("pk", flat=True)


def test_expired_unknown_and_malformed_codes_are_refused_with_their_reason(tenant, api_client, widget):
    contact = ContactFactory(tenant=tenant)
    code = create(api_client, contact.pk).json()["code"]
    AuthCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = redeem(widget, code)
    assert expired.status_code == 400 and error_code(expired) == "auth_code_expired"
    assert AuthCode.objects.get().used_at is None
    assert error_code(redeem(widget, "nope" + code)) == "auth_code_unknown"
    assert error_code(redeem(widget, "")) == "auth_code_unknown"
    assert error_code(redeem(widget, "x" * 101)) == "auth_code_unknown"
    not_text = Client().post(
        f"/widget/api/{widget.public_key}/auth-code", data={"code": 5}, content_type="application/json"
    )
    assert not_text.status_code == 400 and error_code(not_text) == "invalid"
    assert redeem(WidgetFactory.build(public_key="wk_nope"), code).status_code == 404
    assert not ContactIdentity.objects.filter(kind="web").exists()


def test_a_code_is_unknown_to_another_tenants_widget_and_stays_usable(tenant, other_tenant, api_client, widget):
    contact = ContactFactory(tenant=tenant)
    code = create(api_client, contact.pk).json()["code"]
    theirs = WidgetFactory(tenant=other_tenant)
    refused = redeem(theirs, code)
    assert refused.status_code == 400 and error_code(refused) == "auth_code_unknown"
    assert AuthCode.objects.get().used_at is None
    assert redeem(widget, code).status_code == 200


def test_two_redemptions_at_once_cannot_both_win(tenant, widget):
    """The claim is one conditional UPDATE: the loser of the race sees the code used."""
    contact = ContactFactory(tenant=tenant)
    issued = auth_code_create(tenant_id=tenant.pk, contact_id=contact.pk, created_by="test")
    auth_code_redeem(widget=widget, code=issued.code, client_ip=None)
    with pytest.raises(ApplicationError) as lost:
        auth_code_redeem(widget=widget, code=issued.code, client_ip=None)
    assert lost.value.code == "auth_code_used"
    assert AuthCode.objects.filter(used_at__isnull=False).count() == 1


@override_settings(AUTH_CODE_REDEEM_RATE="3/min")
def test_redemptions_are_rate_limited_per_address(tenant, api_client, widget):
    contact = ContactFactory(tenant=tenant)
    code = create(api_client, contact.pk).json()["code"]
    for _ in range(3):
        assert error_code(redeem(widget, "wrong-guess")) == "auth_code_unknown"
    limited = redeem(widget, code)
    assert limited.status_code == 429 and error_code(limited) == "rate_limited"
    assert AuthCode.objects.get().used_at is None
    assert redeem(widget, code, ip="198.51.100.9").status_code == 200  # another address has its own budget


def test_an_open_sms_conversation_comes_back_to_the_web_with_its_history(
    tenant, api_client, widget, published, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    webhook_subscription_create(tenant=tenant, url="http://127.0.0.1:9/hooks", event_types=["conversation.switched"])
    contact = ContactFactory(tenant=tenant, name="Jane Doe")
    earlier = sms_conversation(contact, status=ConversationStatus.CLOSED)
    chat = sms_conversation(contact)
    ContactIdentity.objects.create(tenant=tenant, contact=contact, kind="phone", value="+14155550123", verified=True)
    code = create(api_client, contact.pk).json()["code"]
    with django_capture_on_commit_callbacks(execute=True):
        body = redeem(widget, code).json()
    assert body["conversation"]["id"] == chat.pk and body["conversation"]["channel"] == "web"
    assert body["socket_url"] == f"/ws/visitor/conversations/{chat.pk}/"
    chat.refresh_from_db()
    assert (chat.channel, chat.channel_address, chat.widget_id, chat.visitor_id) == (
        "web",
        "",
        widget.pk,
        body["visitor_id"],
    )
    notice = chat.messages.order_by("-seq").first()
    assert notice.event == "conversation.switched" and notice.body == "Jane Doe continued on the web."
    assert notice.event_data == {"from": "sms", "to": "web", "by": "integrator"}
    switch = ChannelSwitch.objects.get(conversation=chat)
    assert (switch.from_channel, switch.to_channel, switch.by) == ("sms", "web", SwitchedBy.INTEGRATOR)
    [event] = WebhookEvent.objects.filter(tenant=tenant)
    assert event.type == "conversation.switched" and event.payload["from_channel"] == "sms"
    assert event.payload["conversation"]["channel"] == "web"
    # The console hears the new state (its channel shows web).
    updates = [e for _, e in published if e.get("type") == "conversation.updated"]
    assert updates and updates[-1]["conversation"]["channel"] == "web"
    # The signed-in visitor resumes it, and sees the earlier conversation as history.
    token = body["token"]
    session = Client().get(f"/widget/api/{widget.public_key}/session", HTTP_X_VISITOR_TOKEN=token).json()
    assert session["conversation"]["id"] == chat.pk
    history = Client().get(f"/widget/api/{widget.public_key}/history", HTTP_X_VISITOR_TOKEN=token).json()
    assert [c["id"] for c in history["conversations"]] == [earlier.pk]
    assert [m["body"] for m in history["conversations"][0]["messages"]] == [
        "Is my order on its way?",
        "Yes, it ships today.",
    ]
    assert history["conversations"][0]["channel"] == "sms"


def test_history_never_shows_private_notes_nor_another_contacts_conversations(tenant, api_client, widget):
    contact = ContactFactory(tenant=tenant)
    earlier = sms_conversation(contact, status=ConversationStatus.CLOSED)
    MessageFactory(tenant=tenant, conversation=earlier, body="internal", is_private=True, sender_kind=SenderKind.AGENT)
    sms_conversation(ContactFactory(tenant=tenant), status=ConversationStatus.CLOSED)
    token = redeem(widget, create(api_client, contact.pk).json()["code"]).json()["token"]
    history = Client().get(f"/widget/api/{widget.public_key}/history", HTTP_X_VISITOR_TOKEN=token).json()
    assert [c["id"] for c in history["conversations"]] == [earlier.pk]
    assert "internal" not in [m["body"] for m in history["conversations"][0]["messages"]]
    assert Client().get(f"/widget/api/{widget.public_key}/history").status_code == 401


def test_an_open_web_chat_on_this_widget_is_joined_not_moved(tenant, api_client, widget):
    contact = ContactFactory(tenant=tenant)
    chat = ConversationFactory(tenant=tenant, contact=contact, widget=widget, status=ConversationStatus.OPEN)
    body = redeem(widget, create(api_client, contact.pk).json()["code"]).json()
    assert body["visitor_id"] == chat.visitor_id and body["conversation"]["id"] == chat.pk
    assert not ChannelSwitch.objects.exists()


def test_an_admin_sets_the_lifetime_on_the_channels_page_and_bad_values_are_refused(tenant, admin, client):
    from django.urls import reverse

    from channels_switch.services.auth_codes import auth_code_minutes

    client.force_login(admin)
    url = reverse("settings-channels-list")
    page = client.get(url)
    assert page.status_code == 200 and b'name="auth_code_minutes"' in page.content and b'value="10"' in page.content
    for typed in ("0", "1441", "ten", ""):
        refused = client.post(url, {"auth_code_minutes": typed})
        assert refused.status_code == 200 and b"from 1 to 1440" in refused.content, typed
    assert auth_code_minutes(tenant_id=tenant.pk) == 10
    saved = client.post(url, {"auth_code_minutes": "25"})
    assert saved.status_code == 302 and auth_code_minutes(tenant_id=tenant.pk) == 25
    assert b'value="25"' in client.get(url).content


def test_agents_cannot_change_the_lifetime(tenant, agent, client):
    from django.urls import reverse

    from channels_switch.models import ChannelSettings

    client.force_login(agent)
    response = client.post(reverse("settings-channels-list"), {"auth_code_minutes": "30"})
    assert response.status_code in (302, 403)
    assert not ChannelSettings.objects.exists()
