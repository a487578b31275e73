"""Files on SMS (MMS) and WhatsApp, both ways. In: the inbound webhook's MediaUrlN rows are fetched from
Twilio's API host only, with the account's credentials, and kept on a message of their own within the limits;
refusals and lost fetches are told to the agent or re-driven by the sweep. Out: an agent's file goes to Twilio
as a signed, expiring link that serves exactly that file. Twilio is mocked at its HTTP edge only."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from channels_switch.models import InboundMedia, MediaState
from channels_switch.sandbox import sandbox_media_keep, sandbox_media_read
from channels_switch.services import connector_save, inbound_media_fetch, inbound_media_sweep, inbound_receive
from channels_switch.services.media_links import media_link, media_link_attachment
from channels_switch.services.relay import delivery_attempt
from chat.models import Attachment, ConversationStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from tests.channels_switch.twilio_support import ACCOUNT_SID, AUTH_TOKEN, CUSTOMER, twilio_connector
from tests.factories import ContactIdentityFactory, ConversationFactory, TenantFactory

pytestmark = pytest.mark.django_db

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
MEDIA_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM{'1' * 32}/Media/ME{'2' * 32}"
SID = "MM" + "1" * 32


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def whatsapp(tenant):
    return twilio_connector(tenant, kind="whatsapp", from_address="+14155550111")


def photo_received(connector, body="Here is the broken part", media=None):
    return inbound_receive(
        connector=connector,
        provider_id=SID,
        sender=CUSTOMER,
        body=body,
        media=media if media is not None else [(MEDIA_URL, "image/png")],
    )


def basic(call) -> str:
    return call.request.headers["Authorization"]


def test_a_photo_on_whatsapp_is_fetched_with_the_accounts_credentials_and_kept_on_its_own_message(
    tenant, whatsapp, mocked
):
    received = photo_received(whatsapp)
    row = InboundMedia.objects.get()
    assert (row.state, row.url, row.content_type) == (MediaState.PENDING, MEDIA_URL, "image/png")
    mocked.get(MEDIA_URL, body=PNG, content_type="image/png")
    assert inbound_media_fetch(media_id=row.pk) == "kept"
    expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert basic(mocked.calls[0]) == expected
    photo = Message.objects.get(conversation_id=received.conversation_id, attachments__isnull=False)
    attachment = Attachment.objects.get(message=photo)
    assert (photo.sender_kind, photo.body) == (SenderKind.VISITOR, "")
    assert (attachment.content_type, attachment.size, attachment.filename) == (
        "image/png",
        len(PNG),
        attachment.filename,
    )
    assert attachment.filename.startswith("whatsapp-") and attachment.filename.endswith("-1.png")
    assert inbound_media_fetch(media_id=row.pk) == "skipped"  # done once


def test_a_photo_without_text_says_a_file_follows(tenant, whatsapp):
    received = photo_received(whatsapp, body="")
    assert Message.objects.get(pk=received.message_id).body == "[sent 1 file]"


def test_a_repeated_webhook_fetches_its_files_once(tenant, whatsapp):
    photo_received(whatsapp)
    photo_received(whatsapp)
    assert InboundMedia.objects.count() == 1


def test_an_address_that_is_not_twilios_is_never_fetched(tenant, whatsapp, mocked):
    received = photo_received(whatsapp, media=[("http://169.254.169.254/latest/meta-data/", "image/png")])
    assert inbound_media_fetch(media_id=InboundMedia.objects.get().pk) == "failed"
    assert len(mocked.calls) == 0
    notice = Message.objects.get(conversation_id=received.conversation_id, event="media.not_kept")
    assert "not Twilio's" in notice.body


def test_a_twilio_outage_is_retried_then_the_file_kept(tenant, whatsapp, mocked):
    photo_received(whatsapp)
    row = InboundMedia.objects.get()
    mocked.get(MEDIA_URL, status=503)
    mocked.get(MEDIA_URL, body=PNG, content_type="image/png")
    assert inbound_media_fetch(media_id=row.pk) == "retry"
    InboundMedia.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert inbound_media_fetch(media_id=row.pk) == "kept"
    assert InboundMedia.objects.get().state == MediaState.DONE


def test_a_type_the_conversation_does_not_take_is_named_to_the_agent(tenant, whatsapp, mocked):
    received = photo_received(whatsapp, media=[(MEDIA_URL, "audio/ogg")])
    mocked.get(MEDIA_URL, body=b"OggS\x00\x02" + b"\x00" * 40, content_type="audio/ogg")
    assert inbound_media_fetch(media_id=InboundMedia.objects.get().pk) == "failed"
    notice = Message.objects.get(conversation_id=received.conversation_id, event="media.not_kept")
    assert "audio/ogg" in notice.body and "not accepted" in notice.body
    assert not Attachment.objects.exists()


def test_the_sweep_takes_back_a_fetch_a_dead_worker_left(tenant, whatsapp, mocked):
    photo_received(whatsapp)
    long_ago = timezone.now() - timedelta(minutes=5)
    InboundMedia.objects.update(state=MediaState.FETCHING, fetching_since=long_ago, next_attempt_at=long_ago)
    swept = inbound_media_sweep()
    assert swept["media_released"] == 1 and swept["media_retriggered"] == 1
    assert InboundMedia.objects.get().state == MediaState.PENDING
    mocked.get(MEDIA_URL, body=PNG, content_type="image/png")
    assert inbound_media_fetch(media_id=InboundMedia.objects.get().pk) == "kept"


# --- out ------------------------------------------------------------------------------------------------------


def agents_file(tenant, agent, conversation):
    attachment = Attachment(
        tenant=tenant, conversation=conversation, filename="label.png", content_type="image/png", size=len(PNG)
    )
    attachment.uploaded_by = agent
    attachment.file.save("upload", ContentFile(PNG))
    return attachment


def test_an_agents_file_goes_to_twilio_as_a_link_that_serves_exactly_it(
    client, settings, tenant, agent, whatsapp, mocked
):
    conversation = ConversationFactory(
        tenant=tenant, channel="whatsapp", status=ConversationStatus.OPEN, assignee=agent
    )
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=CUSTOMER, verified=True)
    inbound_receive(connector=whatsapp, provider_id="SM" + "9" * 32, sender=CUSTOMER, body="hi")  # the window opens
    attachment = agents_file(tenant, agent, conversation)
    message = message_post(
        actor=agent_actor_for(agent),
        conversation_id=conversation.pk,
        body="Your return label",
        client_id="c-label",
        attachment_ids=[attachment.pk],
    ).message
    messages_url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    mocked.post(messages_url, json={"sid": "SM" + "a" * 32, "status": "queued", "account_sid": ACCOUNT_SID}, status=201)
    assert delivery_attempt(delivery_id=message.delivery.pk) == "sent"
    sent = parse_qs(mocked.calls[-1].request.body)
    [link] = sent["MediaUrl"]
    assert link.startswith(settings.SITE_URL + "/hooks/media/")
    assert media_link_attachment(link.rstrip("/").rsplit("/", 1)[1]) == attachment
    path = link.removeprefix(settings.SITE_URL)
    served = client.get(path)
    assert served.status_code == 200 and b"".join(served.streaming_content) == PNG
    assert served["Content-Type"] == "image/png"
    assert client.get(path[:-3] + "xx/").status_code == 404  # a tampered link


def test_a_link_names_its_tenant_so_another_tenants_file_cannot_be_reached(client, settings, tenant, agent):
    conversation = ConversationFactory(tenant=tenant, channel="sms", status=ConversationStatus.OPEN, assignee=agent)
    attachment = agents_file(tenant, agent, conversation)
    Attachment.objects.filter(pk=attachment.pk).update(tenant=TenantFactory())  # the same id, another tenant
    assert client.get(media_link(attachment).removeprefix(settings.SITE_URL)).status_code == 404
    assert client.get(reverse("hooks-media", kwargs={"token": "nonsense"})).status_code == 404


# --- the sandbox: a customer's photo from the outbox page --------------------------------------------------------


@pytest.fixture
def sandbox_whatsapp(settings, tenant):
    settings.SANDBOX_OUTBOX = True
    return connector_save(tenant=tenant, kind="whatsapp", provider="sandbox", from_address="+14155550111")


def test_a_photo_sent_from_the_sandbox_outbox_is_fetched_like_twilios(client, tenant, agent, sandbox_whatsapp):
    client.force_login(agent)
    photo = SimpleUploadedFile("broken.png", PNG, content_type="image/png")
    client.post(reverse("sandbox-customer-writes"), {"channel": "whatsapp", "address": CUSTOMER, "file": photo})
    first = Message.objects.get(sender_kind=SenderKind.VISITOR)
    assert first.body == "[sent 1 file]"
    row = InboundMedia.objects.get()
    assert row.url.startswith(f"sandbox:sandbox/t{tenant.pk}/")
    assert inbound_media_fetch(media_id=row.pk) == "kept"
    kept = Attachment.objects.get(message__conversation_id=first.conversation_id)
    assert (kept.content_type, kept.file.read()) == ("image/png", PNG)


def test_the_sandbox_reads_no_file_outside_its_tenants_folder(tenant, sandbox_whatsapp):
    other = connector_save(tenant=TenantFactory(), kind="whatsapp", provider="sandbox", from_address="+14155550111")
    url = sandbox_media_keep(other, SimpleUploadedFile("x.png", PNG, content_type="image/png"))
    assert sandbox_media_read(other, url) == PNG
    assert sandbox_media_read(sandbox_whatsapp, url) is None
    assert sandbox_media_read(sandbox_whatsapp, f"sandbox:sandbox/t{tenant.pk}/../t{other.tenant_id}/x") is None


def test_a_file_with_a_sandbox_mail_is_kept_on_it(client, settings, tenant, agent):
    settings.SANDBOX_OUTBOX = True
    connector_save(tenant=tenant, kind="email", provider="sandbox", from_address="help@shop.example")
    client.force_login(agent)
    photo = SimpleUploadedFile("receipt.png", PNG, content_type="image/png")
    form = {"channel": "email", "address": "ada@example.org", "body": "My receipt", "subject": "Refund", "file": photo}
    client.post(reverse("sandbox-customer-writes"), form)
    message = Message.objects.get(sender_kind=SenderKind.VISITOR)
    assert Attachment.objects.get(message=message).filename == "receipt.png"
