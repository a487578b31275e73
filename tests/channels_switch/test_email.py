"""Email conversations through an ESP: each conversation has its own reply address; outbound mail carries
Message-ID, Reply-To, In-Reply-To and References; inbound mail (Postmark's and Mailgun's real webhook shapes,
authenticated as Anymail checks them with the connector's own credentials) is threaded back by reply address,
then by headers, then by sender, stripped of the quoted thread with the whole text kept beside it, its files
kept within limits; tracking events move deliveries forward. The ESP is mocked at its HTTP edge only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.urls import reverse

from channels_switch.models import ChannelConnector, Delivery, InboundReceipt, SandboxMessage
from channels_switch.providers import email_webhook_password
from channels_switch.services import connector_save, delivery_attempt
from channels_switch.services.email import conversation_by_reply_address, reply_address
from chat.models import Attachment, Conversation, ConversationStatus, DeliveryStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from contactcenter.models import ContactIdentity
from contactcenter.secretbox import unseal
from queueing.models import ConversationRoute
from tests.factories import ContactIdentityFactory, ConversationFactory, QueueFactory, TenantFactory

pytestmark = pytest.mark.django_db

CUSTOMER = "ada@example.org"
POSTMARK_SEND = "https://api.postmarkapp.com/email"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
QUOTED = (
    "Thanks, the new one arrived this morning.\n\n"
    "On Tue, 1 Dec 2026 at 10:00, Shop Support <help@shop.example> wrote:\n"
    "> Your replacement is on its way.\n"
    "> Kind regards\n"
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def queue(tenant):
    return QueueFactory(tenant=tenant)


@pytest.fixture
def postmark(tenant, queue):
    return connector_save(
        tenant=tenant,
        kind="email",
        provider="anymail",
        esp="postmark",
        from_address="help@shop.example",
        inbound_address="in.shop.example",
        secret="pm-server-token",
        queue=queue,
    )


def basic_auth(connector: ChannelConnector, password: str | None = None) -> dict[str, str]:
    credentials = f"switchboard:{password or email_webhook_password(connector)}".encode()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials).decode()}


def postmark_inbound(
    *,
    to: str = "anything@in.shop.example",
    text: str = "Where is my order 42?",
    subject: str = "Order 42",
    message_id: str = "<m1@mail.example.org>",
    sender: str = CUSTOMER,
    in_reply_to: str = "",
    attachments: list[dict] | None = None,
) -> dict:
    """Postmark's inbound webhook JSON (its documented shape: FromFull, ToFull, Headers with Message-ID …)."""
    headers = [{"Name": "Return-Path", "Value": f"<{sender}>"}, {"Name": "Message-ID", "Value": message_id}]
    if in_reply_to:
        headers += [{"Name": "In-Reply-To", "Value": in_reply_to}, {"Name": "References", "Value": in_reply_to}]
    return {
        "FromName": "Ada Lovelace",
        "MessageStream": "inbound",
        "From": sender,
        "FromFull": {"Email": sender, "Name": "Ada Lovelace", "MailboxHash": ""},
        "To": to,
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": ""}],
        "CcFull": [],
        "OriginalRecipient": to,
        "Subject": subject,
        "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
        "Date": "Wed, 2 Dec 2026 09:30:00 +0000",
        "TextBody": text,
        "HtmlBody": "",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": headers,
        "Attachments": attachments or [],
    }


def post_inbound(client, connector, payload, auth=None):
    url = reverse("hooks-email-inbound", kwargs={"key": connector.webhook_key})
    return client.post(
        url, data=json.dumps(payload), content_type="application/json", **(auth or basic_auth(connector))
    )


def agent_reply(agent, conversation, body="Your replacement is on its way.", attachment_ids=()):
    return message_post(
        actor=agent_actor_for(agent),
        conversation_id=conversation.pk,
        body=body,
        client_id=f"c-{body[:10]}",
        attachment_ids=attachment_ids,
    ).message


def sent_mail(mocked, n=-1) -> dict:
    return json.loads(mocked.calls[n].request.body)


def ok(mocked, message_id="pm-out-1"):
    mocked.post(POSTMARK_SEND, json={"To": CUSTOMER, "MessageID": message_id, "ErrorCode": 0, "Message": "OK"})


# --- reply addresses --------------------------------------------------------------------------------------


def test_each_conversation_has_its_own_reply_address_on_the_inbound_domain_or_plus_address(tenant, postmark):
    on_domain = reply_address(postmark, 12)
    assert on_domain.startswith("c12-") and on_domain.endswith("@in.shop.example")
    assert reply_address(postmark, 13) != on_domain
    postmark.inbound_address = "support@shop.example"
    plus = reply_address(postmark, 12)
    assert plus.startswith("support+c12-") and plus.endswith("@shop.example")
    postmark.inbound_address = ""
    assert reply_address(postmark, 12).startswith("help+c12-")  # the send-from address, plus-addressed


def test_a_reply_address_is_recognised_whatever_its_case_and_only_for_its_own_tenant(tenant, postmark):
    address = reply_address(postmark, 12)
    assert conversation_by_reply_address(tenant.pk, [address.upper()]) == 12
    assert conversation_by_reply_address(TenantFactory().pk, [address]) is None  # another tenant's token
    forged = address.replace("c12-", "c13-")  # another conversation under the same MAC
    assert conversation_by_reply_address(tenant.pk, [forged]) is None
    assert conversation_by_reply_address(tenant.pk, ["ada@example.org", "c12-0000@in.shop.example"]) is None


# --- outbound headers ----------------------------------------------------------------------------------------


def email_conversation(tenant, agent, address=CUSTOMER):
    conversation = ConversationFactory(tenant=tenant, channel="email", status=ConversationStatus.OPEN, assignee=agent)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="email", value=address, verified=True)
    return conversation


def test_the_first_mail_has_its_message_id_its_reply_address_and_names_the_contact_center(
    tenant, agent, postmark, mocked
):
    conversation = email_conversation(tenant, agent)
    ok(mocked)
    delivery = agent_reply(agent, conversation).delivery
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    mail = sent_mail(mocked)
    assert mail["ReplyTo"] == reply_address(postmark, conversation.pk)
    assert mail["Subject"] == f"Your conversation with {tenant.name}"
    assert {h["Name"]: h["Value"] for h in mail["Headers"]} == {
        "Message-ID": f"<d{delivery.pk}.t{tenant.pk}@shop.example>"
    }


def test_an_answer_to_the_customers_mail_keeps_its_subject_and_names_the_thread(
    client, tenant, agent, postmark, mocked
):
    assert post_inbound(client, postmark, postmark_inbound()).status_code == 204
    conversation = Conversation.objects.get(channel="email")
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.OPEN, assignee=agent)
    ok(mocked, "pm-out-1")
    first = agent_reply(agent, conversation, "Let me look.").delivery
    delivery_attempt(delivery_id=first.pk)
    ok(mocked, "pm-out-2")
    second = agent_reply(agent, conversation, "It ships today.").delivery
    delivery_attempt(delivery_id=second.pk)
    mail = sent_mail(mocked)
    headers = {h["Name"]: h["Value"] for h in mail["Headers"]}
    ours = f"<d{first.pk}.t{tenant.pk}@shop.example>"
    assert mail["Subject"] == "Re: Order 42"
    assert headers["In-Reply-To"] == ours
    assert headers["References"] == f"<m1@mail.example.org> {ours}"


def test_an_agents_file_goes_with_the_mail(tenant, agent, postmark, mocked):
    conversation = email_conversation(tenant, agent)
    attachment = Attachment(
        tenant=tenant, conversation=conversation, filename="label.png", content_type="image/png", size=len(PNG)
    )
    attachment.uploaded_by = agent
    from django.core.files.base import ContentFile

    attachment.file.save("upload", ContentFile(PNG))
    ok(mocked)
    delivery = agent_reply(agent, conversation, "The label", attachment_ids=[attachment.pk]).delivery
    delivery_attempt(delivery_id=delivery.pk)
    assert sent_mail(mocked)["Attachments"] == [
        {"Name": "label.png", "Content": base64.b64encode(PNG).decode(), "ContentType": "image/png"}
    ]


# --- inbound: a new conversation, threading, the reply parser, files -----------------------------------------------


def test_a_mail_from_a_new_sender_starts_a_conversation_routed_to_the_channels_queue(client, tenant, postmark, queue):
    assert post_inbound(client, postmark, postmark_inbound()).status_code == 204
    conversation = Conversation.objects.get()
    assert (conversation.channel, conversation.status) == ("email", ConversationStatus.WAITING)
    assert ConversationRoute.objects.get(conversation=conversation).queue_id == queue.pk
    message = Message.objects.get(conversation=conversation)
    assert (message.sender_kind, message.body) == (SenderKind.VISITOR, "Order 42\n\nWhere is my order 42?")
    identity = ContactIdentity.objects.get(kind="email")
    assert (identity.value, identity.verified, identity.contact.name) == (CUSTOMER, True, "Ada Lovelace")


def test_a_reply_to_the_reply_address_continues_its_conversation_even_from_another_mailbox(
    client, tenant, agent, postmark
):
    conversation = email_conversation(tenant, agent)
    other = email_conversation(tenant, agent, address="bob@example.net")  # the sender's own open conversation
    payload = postmark_inbound(
        to=reply_address(postmark, conversation.pk), sender="bob@example.net", message_id="<fw@example.net>"
    )
    assert post_inbound(client, postmark, payload).status_code == 204
    visitor_messages = Message.objects.filter(sender_kind=SenderKind.VISITOR)
    assert [m.conversation_id for m in visitor_messages] == [conversation.pk]
    assert not Message.objects.filter(conversation=other).exists()
    notice = Message.objects.get(conversation=conversation, event="email.other_sender")
    assert "bob@example.net" in notice.body


def test_a_reply_sent_to_the_plain_address_is_threaded_by_in_reply_to(client, tenant, agent, postmark, mocked):
    conversation = email_conversation(tenant, agent, address="ada@old-address.example")
    ok(mocked)
    delivery = agent_reply(agent, conversation).delivery
    delivery_attempt(delivery_id=delivery.pk)
    ours = f"<d{delivery.pk}.t{tenant.pk}@shop.example>"
    payload = postmark_inbound(to="help@in.shop.example", in_reply_to=ours, sender="ada@new-address.example")
    assert post_inbound(client, postmark, payload).status_code == 204
    assert Message.objects.filter(conversation=conversation, sender_kind=SenderKind.VISITOR).count() == 1
    assert Conversation.objects.count() == 1


def test_another_tenants_message_id_threads_nothing(client, tenant, agent, postmark, mocked):
    conversation = email_conversation(tenant, agent)
    ok(mocked)
    delivery = agent_reply(agent, conversation).delivery
    delivery_attempt(delivery_id=delivery.pk)
    other = TenantFactory()
    elsewhere = connector_save(
        tenant=other, kind="email", provider="anymail", esp="postmark", from_address="hi@other.example", secret="x"
    )
    theirs = f"<d{delivery.pk}.t{tenant.pk}@shop.example>"
    assert (
        post_inbound(client, elsewhere, postmark_inbound(in_reply_to=theirs, sender="eve@example.com")).status_code
        == 204
    )
    assert Message.objects.filter(conversation=conversation, sender_kind=SenderKind.VISITOR).count() == 0
    assert Conversation.objects.filter(tenant=other).count() == 1


def test_the_quoted_thread_is_stripped_and_the_whole_mail_kept_beside_it(client, tenant, agent, postmark):
    conversation = email_conversation(tenant, agent)
    payload = postmark_inbound(to=reply_address(postmark, conversation.pk), text=QUOTED)
    assert post_inbound(client, postmark, payload).status_code == 204
    message = Message.objects.get(conversation=conversation, sender_kind=SenderKind.VISITOR)
    assert message.body == "Thanks, the new one arrived this morning."
    original = Attachment.objects.get(message=message)
    assert original.filename == "original-email.txt"
    assert "> Your replacement is on its way." in original.file.read().decode()


def test_files_are_kept_within_the_limits_and_the_agent_is_told_of_the_others(client, tenant, agent, postmark):
    conversation = email_conversation(tenant, agent)
    files = [
        {"Name": "photo.png", "Content": base64.b64encode(PNG).decode(), "ContentType": "image/png"},
        {
            "Name": "invoice.html",
            "Content": base64.b64encode(b"<html><script>x</script>").decode(),
            "ContentType": "text/html",
        },
    ]
    payload = postmark_inbound(to=reply_address(postmark, conversation.pk), attachments=files)
    assert post_inbound(client, postmark, payload).status_code == 204
    message = Message.objects.get(conversation=conversation, sender_kind=SenderKind.VISITOR)
    kept = Attachment.objects.get(message=message)
    assert (kept.filename, kept.content_type, kept.size) == ("photo.png", "image/png", len(PNG))
    notice = Message.objects.get(conversation=conversation, event="email.files_refused")
    assert "invoice.html" in notice.body


def test_the_same_mail_posted_twice_is_stored_once(client, tenant, postmark):
    assert post_inbound(client, postmark, postmark_inbound()).status_code == 204
    assert post_inbound(client, postmark, postmark_inbound()).status_code == 204
    assert Message.objects.filter(sender_kind=SenderKind.VISITOR).count() == 1
    assert InboundReceipt.objects.get().email_message_id == "<m1@mail.example.org>"


def test_a_reply_to_a_closed_conversation_starts_a_new_one(client, tenant, agent, postmark):
    conversation = email_conversation(tenant, agent)
    Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.CLOSED)
    assert (
        post_inbound(client, postmark, postmark_inbound(to=reply_address(postmark, conversation.pk))).status_code == 204
    )
    new = Conversation.objects.exclude(pk=conversation.pk).get()
    assert new.contact_id == conversation.contact_id and new.status == ConversationStatus.WAITING


# --- inbound: authentication -----------------------------------------------------------------------------------


def test_a_mail_without_the_connectors_credentials_stores_nothing(client, tenant, postmark):
    other = connector_save(
        tenant=TenantFactory(), kind="email", provider="anymail", esp="postmark", from_address="a@b.example", secret="x"
    )
    for auth in ({}, basic_auth(postmark, "wrong"), basic_auth(other)):
        assert post_inbound(client, postmark, postmark_inbound(), auth=auth or {"HTTP_X": "1"}).status_code == 403
    assert not Message.objects.exists() and not InboundReceipt.objects.exists()


def test_a_malformed_mail_webhook_is_refused(client, tenant, postmark):
    url = reverse("hooks-email-inbound", kwargs={"key": postmark.webhook_key})
    answer = client.post(url, data="{not json", content_type="application/json", **basic_auth(postmark))
    assert answer.status_code == 400
    no_sender = postmark_inbound(sender="")
    no_sender["FromFull"] = {"Email": "", "Name": ""}
    assert post_inbound(client, postmark, no_sender).status_code == 400
    assert not Message.objects.exists()


def mailgun_signed(key: str, fields: dict[str, str], timestamp: int | None = None) -> dict[str, str]:
    """Mailgun's signature: HMAC-SHA256(webhook signing key, timestamp + token), hex, beside the form fields."""
    timestamp = timestamp or int(time.time())
    token = "a" * 50
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": str(timestamp), "token": token, "signature": signature}


@pytest.fixture
def mailgun(tenant):
    return connector_save(
        tenant=tenant,
        kind="email",
        provider="anymail",
        esp="mailgun",
        from_address="help@shop.example",
        secret="key-api",
        webhook_secret="signing-key-1",
    )


def test_mailgun_mail_is_taken_only_with_the_connectors_own_signing_key(client, tenant, mailgun):
    assert unseal(ChannelConnector.objects.get().webhook_secret_sealed) == "signing-key-1"
    raw = (
        f"From: Ada <{CUSTOMER}>\r\nTo: help@shop.example\r\nSubject: Hello\r\nMessage-ID: <mg1@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nDo you ship to Norway?\r\n"
    )
    url = reverse("hooks-email-inbound", kwargs={"key": mailgun.webhook_key})
    forged = mailgun_signed("another-key", {"body-mime": raw})
    assert client.post(url, data=forged, **basic_auth(mailgun)).status_code == 403
    assert (
        client.post(url, data=mailgun_signed("signing-key-1", {"body-mime": raw}), **basic_auth(mailgun)).status_code
        == 204
    )
    assert Message.objects.get().body == "Hello\n\nDo you ship to Norway?"


# --- tracking events ------------------------------------------------------------------------------------------


def postmark_event(record_type: str, message_id: str, **extra) -> dict:
    return {
        "RecordType": record_type,
        "MessageID": message_id,
        "Recipient": CUSTOMER,
        "MessageStream": "outbound",
        **extra,
    }


def test_tracking_events_move_a_mail_forward_and_never_back(client, tenant, agent, postmark, mocked):
    conversation = email_conversation(tenant, agent)
    ok(mocked, "pm-out-7")
    delivery = agent_reply(agent, conversation).delivery
    delivery_attempt(delivery_id=delivery.pk)
    url = reverse("hooks-email-tracking", kwargs={"key": postmark.webhook_key})

    def event(record_type, **extra):
        payload = json.dumps(postmark_event(record_type, "pm-out-7", **extra))
        return client.post(url, data=payload, content_type="application/json", **basic_auth(postmark))

    assert event("Delivery", DeliveredAt="2026-12-02T10:00:00Z").status_code == 204
    assert Message.objects.get(pk=delivery.message_id).delivery_status == DeliveryStatus.DELIVERED
    assert event("Open", ReceivedAt="2026-12-02T10:05:00Z", FirstOpen=True).status_code == 204
    assert Message.objects.get(pk=delivery.message_id).delivery_status == DeliveryStatus.READ
    assert event("Delivery", DeliveredAt="2026-12-02T10:00:00Z").status_code == 204  # late: ignored
    assert Message.objects.get(pk=delivery.message_id).delivery_status == DeliveryStatus.READ


def test_a_bounce_fails_the_mail_with_the_providers_reason(client, tenant, agent, postmark, mocked):
    conversation = email_conversation(tenant, agent)
    ok(mocked, "pm-out-8")
    delivery = agent_reply(agent, conversation).delivery
    delivery_attempt(delivery_id=delivery.pk)
    url = reverse("hooks-email-tracking", kwargs={"key": postmark.webhook_key})
    payload = postmark_event("Bounce", "pm-out-8", Type="HardBounce", TypeCode=1, Description="Unknown user")
    answer = client.post(url, data=json.dumps(payload), content_type="application/json", **basic_auth(postmark))
    assert answer.status_code == 204
    message = Message.objects.get(pk=delivery.message_id)
    assert message.delivery_status == DeliveryStatus.FAILED
    assert Delivery.objects.get(pk=delivery.pk).error_message


# --- the sandbox, end to end --------------------------------------------------------------------------------------


def test_a_sandbox_mail_answered_in_the_outbox_reaches_its_conversation_by_its_reply_address(
    client, settings, tenant, agent
):
    settings.SANDBOX_OUTBOX = True
    sandbox = connector_save(tenant=tenant, kind="email", provider="sandbox", from_address="help@shop.example")
    conversation = email_conversation(tenant, agent)
    ConversationFactory(  # the same customer's other open mail conversation: not the one answered
        tenant=tenant, channel="email", status=ConversationStatus.OPEN, assignee=agent, contact=conversation.contact
    )
    delivery_attempt(delivery_id=agent_reply(agent, conversation, "Which size?").delivery.pk)
    sent = SandboxMessage.objects.get()
    assert sent.reply_to == reply_address(sandbox, conversation.pk) and sent.message_id.startswith("<d")
    client.force_login(agent)
    form = {"channel": "email", "address": CUSTOMER, "body": "Size 38, please.", "answers": sent.pk}
    client.post(reverse("sandbox-customer-writes"), form)
    message = Message.objects.get(conversation=conversation, sender_kind=SenderKind.VISITOR)
    assert message.body == "Size 38, please."  # the quote the sandbox's mail client added is stripped
    original = Attachment.objects.get(message=message).file.read().decode()
    assert "wrote:\n> Which size?" in original
    assert InboundReceipt.objects.get().subject == "Re: " + sent.subject


# --- settings ---------------------------------------------------------------------------------------------------


def test_the_channel_page_shows_the_email_webhook_urls_and_never_the_signing_key(client, admin, tenant, mailgun):
    connector = mailgun
    client.force_login(admin)
    page = client.get(reverse("settings-channels-edit", kwargs={"pk": connector.pk})).content.decode()
    password = email_webhook_password(connector)
    assert f"switchboard:{password}@" in page and f"/hooks/email/{connector.webhook_key}/inbound/" in page
    assert "signing-key-1" not in page and "A signing key is stored" in page


def test_a_mail_larger_than_djangos_in_memory_limit_is_still_taken(client, settings, tenant, agent, postmark):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # the same rule as the default 2.5 MB, cheaper to exceed
    conversation = email_conversation(tenant, agent)
    big = PNG + b"\x00" * (100 * 1024)  # a PNG as a photo is, larger than the limit once in base64
    files = [{"Name": "photo.png", "Content": base64.b64encode(big).decode(), "ContentType": "image/png"}]
    payload = postmark_inbound(to=reply_address(postmark, conversation.pk), attachments=files)
    assert post_inbound(client, postmark, payload).status_code == 204
    assert Attachment.objects.get(message__conversation=conversation).size == len(big)
