"""Twilio's webhooks into Switchboard, signed exactly as Twilio signs them: inbound SMS and WhatsApp messages
start and continue conversations; status callbacks move deliveries forward; forged, tampered or misdirected
requests store nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from agents.models import AgentProfile, Presence
from channels_switch.models import Delivery, DeliveryState, InboundReceipt, InboundState
from channels_switch.services import connector_save, inbound_inbox_sweep, inbound_process
from channels_switch.tasks import drain_inbound, process_inbound
from chat.models import Channel, Conversation, ConversationStatus, DeliveryStatus, Message, SenderKind
from contactcenter.models import ContactIdentity
from queueing.models import ConversationRoute, Offer
from tests.channels_switch.twilio_support import ACCOUNT_SID, AUTH_TOKEN, CUSTOMER, twilio_connector
from tests.factories import (
    ContactIdentityFactory,
    ConversationFactory,
    MembershipFactory,
    QueueFactory,
    QueueMemberFactory,
)

pytestmark = pytest.mark.django_db

OTHER_TOKEN = "fedcba9876543210" * 2


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's algorithm (shared/PROVIDERS.md): base64(HMAC-SHA1(token, url + each name and value, by name))."""
    signed = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def test_the_signer_here_is_twilios_own():
    url, params = "https://chat.example.com/hooks/twilio/k/inbound/", {"Body": "hi", "From": CUSTOMER}
    assert twilio_signature(AUTH_TOKEN, url, params) == RequestValidator(AUTH_TOKEN).compute_signature(url, params)


@pytest.fixture
def queue(tenant):
    return QueueFactory(tenant=tenant)


@pytest.fixture
def sms(tenant, queue):
    return twilio_connector(tenant, queue=queue)


@pytest.fixture
def whatsapp(tenant):
    return twilio_connector(tenant, kind="whatsapp", from_address="+14155550111")


def inbound_params(sid: str, body: str = "Hello, is my order on its way?", sender: str = CUSTOMER, **extra) -> dict:
    return {
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": "+14155550100",
        "Body": body,
        "NumMedia": "0",
        **extra,
    }


def hook(client, settings, connector, params, *, hook="inbound", token=AUTH_TOKEN, signed_params=None, process=True):
    """Posts a signed webhook; then (`process`) the task its inbound message would trigger runs here."""
    path = reverse(f"hooks-twilio-{hook}", kwargs={"key": connector.webhook_key})
    signature = twilio_signature(token, settings.SITE_URL + path, signed_params or params)
    response = client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)
    if process:
        for receipt_id in InboundReceipt.objects.filter(state=InboundState.PENDING).values_list("pk", flat=True):
            inbound_process(receipt_id=receipt_id)
    return response


def sid(n: int) -> str:
    return f"SM{n:032x}"


def test_a_first_sms_starts_a_conversation_routed_to_the_channels_queue(client, settings, tenant, sms, queue):
    member = MembershipFactory(tenant=tenant).user
    AgentProfile.objects.filter(user=member).update(presence=Presence.ONLINE)
    QueueMemberFactory(tenant=tenant, queue=queue, user=member)
    response = hook(client, settings, sms, inbound_params(sid(1)))
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert response.content.decode() == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    conversation = Conversation.objects.get(tenant=tenant)
    assert (conversation.channel, conversation.status, conversation.widget_id) == ("sms", "waiting", None)
    (message,) = Message.objects.filter(conversation=conversation)
    assert (message.sender_kind, message.body, message.channel, message.seq) == (
        SenderKind.VISITOR,
        "Hello, is my order on its way?",
        "sms",
        1,
    )
    identity = ContactIdentity.objects.get(tenant=tenant, contact=conversation.contact)
    assert (identity.kind, identity.value, identity.verified) == ("phone", CUSTOMER, True)
    assert conversation.contact.name == CUSTOMER  # no profile name: agents know them by their number
    assert ConversationRoute.objects.get(conversation=conversation).queue_id == queue.pk
    assert Offer.objects.filter(conversation=conversation, agent=member).exists()


def test_the_next_sms_continues_the_open_conversation(client, settings, tenant, sms):
    hook(client, settings, sms, inbound_params(sid(1)))
    hook(client, settings, sms, inbound_params(sid(2), body="Any news?"))
    conversation = Conversation.objects.get(tenant=tenant)
    assert list(conversation.messages.values_list("seq", "body")) == [
        (1, "Hello, is my order on its way?"),
        (2, "Any news?"),
    ]


def test_twilios_retry_of_a_webhook_stores_the_message_once(client, settings, tenant, sms):
    for _ in range(3):
        assert hook(client, settings, sms, inbound_params(sid(7))).status_code == 200
    assert Message.objects.filter(tenant=tenant).count() == 1


def test_after_a_conversation_closed_the_next_sms_starts_a_new_one(client, settings, tenant, sms):
    hook(client, settings, sms, inbound_params(sid(1)))
    Conversation.objects.filter(tenant=tenant).update(status=ConversationStatus.CLOSED)
    hook(client, settings, sms, inbound_params(sid(2), body="New question"))
    conversations = Conversation.objects.filter(tenant=tenant).order_by("pk")
    assert [c.status for c in conversations] == ["closed", "waiting"]
    assert conversations[0].contact_id == conversations[1].contact_id


def test_a_number_typed_into_a_survey_is_verified_by_its_first_message(client, settings, tenant, sms):
    typed = ContactIdentityFactory(tenant=tenant, kind="phone", value=CUSTOMER, verified=False)
    hook(client, settings, sms, inbound_params(sid(1)))
    typed.refresh_from_db()
    assert typed.verified and Conversation.objects.get(tenant=tenant).contact_id == typed.contact_id


def test_a_whatsapp_message_is_on_the_whatsapp_channel_with_the_profile_name(client, settings, tenant, whatsapp):
    params = inbound_params(sid(3), sender=f"whatsapp:{CUSTOMER}", ProfileName="Ada", WaId=CUSTOMER[1:])
    params["To"] = "whatsapp:+14155550111"
    assert hook(client, settings, whatsapp, params).status_code == 200
    conversation = Conversation.objects.get(tenant=tenant)
    assert conversation.channel == Channel.WHATSAPP and conversation.contact.name == "Ada"
    assert ContactIdentity.objects.get(contact=conversation.contact).kind == "whatsapp"


@pytest.mark.parametrize(
    "forgery",
    ["no signature", "wrong token", "tampered body", "another connector's url"],
)
def test_forged_or_tampered_requests_are_refused_and_store_nothing(
    client, settings, tenant, sms, forgery, other_tenant
):
    params = inbound_params(sid(9))
    if forgery == "no signature":
        path = reverse("hooks-twilio-inbound", kwargs={"key": sms.webhook_key})
        response = client.post(path, params)
    elif forgery == "wrong token":
        response = hook(client, settings, sms, params, token=OTHER_TOKEN)
    elif forgery == "tampered body":
        response = hook(client, settings, sms, {**params, "Body": "Send me a refund"}, signed_params=params)
    else:
        # Tenant B's URL, signed with tenant A's token: B's connector checks with its own token only.
        theirs = connector_save(
            tenant=other_tenant,
            kind="sms",
            provider="twilio",
            account_sid=ACCOUNT_SID,
            from_address="+14155550199",
            secret=OTHER_TOKEN,
        )
        response = hook(client, settings, theirs, params, token=AUTH_TOKEN)
    assert response.status_code == 403
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_an_unknown_webhook_key_is_404(client, settings):
    response = client.post("/hooks/twilio/not-a-key/inbound/", inbound_params(sid(1)))
    assert response.status_code == 404


def test_the_signature_is_checked_against_the_public_url_behind_a_tls_proxy(client, settings, tenant, sms):
    settings.SITE_URL = "https://chat.example.com"
    assert hook(client, settings, sms, inbound_params(sid(1))).status_code == 200
    settings.SITE_URL = "http://testserver"  # what the request itself says: not what Twilio signed
    path = reverse("hooks-twilio-inbound", kwargs={"key": sms.webhook_key})
    signature = twilio_signature(AUTH_TOKEN, "https://chat.example.com" + path, inbound_params(sid(2)))
    assert client.post(path, inbound_params(sid(2)), HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403


def test_a_malformed_sender_is_refused_with_a_reason(client, settings, sms):
    response = hook(client, settings, sms, inbound_params(sid(1), sender="not-a-number"))
    assert response.status_code == 400 and "international format" in response.content.decode()
    assert not Message.objects.exists()


def test_a_turned_off_channel_still_keeps_what_customers_send(client, settings, tenant, sms):
    connector_save(tenant=tenant, instance=sms, enabled=False)
    assert hook(client, settings, sms, inbound_params(sid(1))).status_code == 200
    assert Message.objects.filter(tenant=tenant).count() == 1


# --- the inbox: kept by the webhook, processed by a task (or the sweep) -----------------------------------


def test_the_webhook_keeps_the_message_and_triggers_its_task_once_committed(
    client, settings, tenant, sms, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[tuple] = []
    monkeypatch.setattr(drain_inbound, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = hook(client, settings, sms, inbound_params(sid(1)), process=False)
    assert response.status_code == 200
    receipt = InboundReceipt.objects.get(tenant=tenant)
    assert (receipt.state, receipt.provider_id) == ("pending", sid(1))
    assert receipt.fields["Body"] == "Hello, is my order on its way?"
    assert sent == [(sms.pk,)] and not Message.objects.exists()
    assert drain_inbound(sms.pk) == 1  # what the worker runs
    receipt.refresh_from_db()
    assert (receipt.state, receipt.fields, receipt.error) == ("done", {}, "")
    assert Message.objects.get(tenant=tenant).pk == receipt.message_id
    assert process_inbound(receipt.pk) == "skipped"  # a second copy of a task: nothing twice
    assert drain_inbound(sms.pk) == 0


@pytest.mark.redis
def test_triggers_coalesce_into_one_drain_that_keeps_the_order_and_leaves_nothing_behind(
    client, settings, tenant, sms, monkeypatch, django_capture_on_commit_callbacks
):
    from channels_switch.services import inbox

    sent: list[tuple] = []
    monkeypatch.setattr(drain_inbound, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        for n, body in enumerate(["first", "second", "third"], start=1):
            hook(client, settings, sms, inbound_params(sid(n), body=body), process=False)
    assert sent == [(sms.pk,)]  # one drain for the burst: the slot was held for the other two
    assert drain_inbound(sms.pk) == 3
    assert list(Message.objects.filter(tenant=tenant).order_by("seq").values_list("body", flat=True)) == [
        "first",
        "second",
        "third",
    ]
    assert not inbox._slots().exists(inbox._slot_key(sms.pk))  # let go
    # A message kept while a drain holds the slot, after its last look: the drain's look after letting go sends it.
    inbox._slots().set(inbox._slot_key(sms.pk), "1")
    with django_capture_on_commit_callbacks(execute=True):
        hook(client, settings, sms, inbound_params(sid(4), body="fourth"), process=False)
    assert sent == [(sms.pk,)]
    inbox._slot_release(sms.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert drain_inbound(sms.pk) == 1
    assert Message.objects.filter(tenant=tenant).count() == 4


def test_a_lost_task_is_made_good_by_the_sweep(client, settings, tenant, sms, monkeypatch):
    monkeypatch.setattr(drain_inbound, "delay", lambda *args: None)  # the broker took it and lost it
    hook(client, settings, sms, inbound_params(sid(1)), process=False)
    assert inbound_inbox_sweep() == {"inbound_retriggered": 0}  # within its grace: its task may yet run
    InboundReceipt.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    retriggered: list[tuple] = []
    monkeypatch.setattr(process_inbound, "delay", lambda *args: retriggered.append(args))
    assert inbound_inbox_sweep() == {"inbound_retriggered": 1}
    (receipt_id,) = retriggered[0]
    process_inbound(receipt_id)
    assert Message.objects.filter(tenant=tenant).count() == 1
    assert inbound_inbox_sweep() == {"inbound_retriggered": 0}


def test_a_broker_that_is_down_loses_nothing(
    client, settings, tenant, sms, monkeypatch, django_capture_on_commit_callbacks
):
    from channels_switch.services import inbox

    def down(*args):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(drain_inbound, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        response = hook(client, settings, sms, inbound_params(sid(1)), process=False)
    assert response.status_code == 200  # answered: the message is kept, and the sweep will trigger it
    assert InboundReceipt.objects.get(tenant=tenant).state == "pending"
    assert not inbox._slots().exists(inbox._slot_key(sms.pk))  # no drain holds the slot: the next one triggers


def test_an_unexpected_error_leaves_it_pending_for_a_later_attempt_then_failed(
    client, settings, tenant, sms, monkeypatch
):
    from channels_switch.services import inbox

    def broken(**kwargs):
        raise RuntimeError("database hiccup")

    hook(client, settings, sms, inbound_params(sid(1)), process=False)
    receipt = InboundReceipt.objects.get(tenant=tenant)
    monkeypatch.setattr(inbox, "receipt_fill", broken)
    assert inbound_process(receipt_id=receipt.pk) is None
    receipt.refresh_from_db()
    assert (receipt.state, receipt.attempts, receipt.error) == ("pending", 1, "RuntimeError: database hiccup")
    assert receipt.next_attempt_at > timezone.now() and receipt.fields["MessageSid"] == sid(1)
    for _ in range(inbox.INBOUND_MAX_ATTEMPTS - 1):
        inbound_process(receipt_id=receipt.pk)
    receipt.refresh_from_db()
    assert (receipt.state, receipt.attempts) == ("failed", inbox.INBOUND_MAX_ATTEMPTS)
    assert not Message.objects.exists() and not Conversation.objects.exists()
    monkeypatch.undo()
    assert inbound_inbox_sweep() == {"inbound_retriggered": 0}  # given up on: the error is on the row


def test_a_refused_message_is_marked_failed_with_the_reason(client, settings, tenant, sms):
    hook(client, settings, sms, inbound_params(sid(1)), process=False)
    # What the services refuse only at processing time (here: an address stored before a rule changed).
    InboundReceipt.objects.update(fields={**inbound_params(sid(1)), "From": "+1 555"})
    receipt = InboundReceipt.objects.get(tenant=tenant)
    assert inbound_process(receipt_id=receipt.pk) is None
    receipt.refresh_from_db()
    assert receipt.state == "failed" and "international format" in receipt.error


# --- status callbacks -------------------------------------------------------------------------------------


def sent_delivery(tenant, sms) -> Delivery:
    """An agent's SMS the relay handed to Twilio (provider id SM…01)."""
    agent = MembershipFactory(tenant=tenant).user
    conversation = ConversationFactory(tenant=tenant, channel="sms", status=ConversationStatus.OPEN, assignee=agent)
    message = Message.objects.create(
        tenant=tenant,
        conversation=conversation,
        seq=1,
        sender_kind=SenderKind.AGENT,
        sender_user=agent,
        body="Shipped",
        channel="sms",
        delivery_status=DeliveryStatus.SENDING,
    )
    return Delivery.objects.create(
        tenant=tenant,
        message=message,
        connector=sms,
        channel="sms",
        to_address=CUSTOMER,
        state=DeliveryState.SENT,
        provider_id=sid(1),
        provider_status="queued",
    )


@pytest.fixture
def sent(tenant, sms):
    return sent_delivery(tenant, sms)


def callback(client, settings, sms, status, **extra):
    params = {"MessageSid": sid(1), "MessageStatus": status, "AccountSid": ACCOUNT_SID, **extra}
    return hook(client, settings, sms, params, hook="status")


def status_of(delivery) -> str:
    return Message.objects.get(pk=delivery.message_id).delivery_status


def test_status_callbacks_move_a_message_forward(client, settings, sms, sent):
    for status, shown in [("sent", "sent"), ("delivered", "delivered"), ("read", "read")]:
        assert callback(client, settings, sms, status).status_code == 204
        assert status_of(sent) == shown


def test_a_late_or_repeated_callback_never_moves_it_back(client, settings, sms, sent):
    callback(client, settings, sms, "delivered")
    callback(client, settings, sms, "sent")
    callback(client, settings, sms, "queued")
    assert status_of(sent) == "delivered"


def test_an_undelivered_message_shows_failed_with_the_error(client, settings, sms, sent):
    callback(client, settings, sms, "undelivered", ErrorCode="30003")
    assert status_of(sent) == "failed"
    delivery = Delivery.objects.get(pk=sent.pk)
    assert delivery.error_code == "30003" and "30003" in delivery.error_message


def test_a_forged_callback_changes_nothing(client, settings, sms, sent):
    params = {"MessageSid": sid(1), "MessageStatus": "failed"}
    path = reverse("hooks-twilio-status", kwargs={"key": sms.webhook_key})
    assert client.post(path, params, HTTP_X_TWILIO_SIGNATURE="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert status_of(sent) == "sending"
