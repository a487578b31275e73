"""Merging two contacts: identities and conversations move once, an address both hold stays once (verified or
opted out if either was), the merge is recorded on the contact kept, and a customer's messages arriving while
it happens are neither lost nor stored twice."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from channels_switch.services import connector_save, inbound_receive
from chat.models import Conversation, ConversationStatus, Message
from chat.services.contacts import contact_merge
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Contact, ContactIdentity, ContactMerge, WebhookEvent
from contactcenter.services import contact_create, contact_identity_add
from contactcenter.services.webhooks_out import webhook_subscription_create

CUSTOMER = "+447911123456"


@pytest.fixture
def sms(tenant):
    return connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")


def texted(connector, body: str, n: int) -> Conversation:
    inbound = inbound_receive(connector=connector, provider_id=f"SM{n}", sender=CUSTOMER, body=body)
    return Conversation.objects.get(pk=inbound.conversation_id)


@pytest.mark.django_db
def test_a_merge_moves_identities_and_conversations_once_and_is_recorded(tenant, sms):
    by_sms = texted(sms, "Where is my order?", 1)  # the text proves the number: a contact of its own
    twin = by_sms.contact
    ada = contact_create(tenant=tenant, name="Ada Lovelace")
    contact_identity_add(contact=ada, kind="email", value="ada@example.com", verified=True)
    contact_identity_add(contact=ada, kind="phone", value=CUSTOMER)  # typed by an agent: unverified
    assert twin.pk != ada.pk
    twin_phone = ContactIdentity.objects.get(contact=twin)
    assert twin_phone.verified and not ContactIdentity.objects.get(contact=ada, kind="phone").verified

    record = contact_merge(tenant_id=tenant.pk, contact_id=ada.pk, merged_contact_id=twin.pk, merged_by="Alice Agent")

    assert not Contact.objects.filter(pk=twin.pk).exists()
    assert sorted(ContactIdentity.objects.filter(contact=ada).values_list("kind", "value", "verified")) == [
        ("email", "ada@example.com", True),
        ("phone", CUSTOMER, True),  # once, and proved by the text
    ]
    assert Conversation.objects.get(pk=by_sms.pk).contact_id == ada.pk
    assert (record.contact_id, record.merged_contact_id, record.merged_name, record.conversations_moved) == (
        ada.pk,
        twin.pk,
        CUSTOMER,
        1,
    )
    assert record.identities == [{"kind": "phone", "value": CUSTOMER, "verified": True}]
    assert record.merged_by == "Alice Agent"
    # The customer texts again: the same conversation goes on, now Ada's.
    assert texted(sms, "Any news?", 2).pk == by_sms.pk


@pytest.mark.django_db
def test_an_opt_out_of_either_contact_survives_the_merge(tenant, sms):
    texted(sms, "STOP", 1)
    stopped = ContactIdentity.objects.get(value=CUSTOMER)
    assert stopped.opted_out_at is not None
    kept = contact_create(tenant=tenant, name="Ada")
    contact_identity_add(contact=kept, kind="phone", value=CUSTOMER)
    contact_merge(tenant_id=tenant.pk, contact_id=kept.pk, merged_contact_id=stopped.contact_id, merged_by="x")
    assert ContactIdentity.objects.get(contact=kept).opted_out_at == stopped.opted_out_at


@pytest.mark.django_db
def test_earlier_merges_of_the_merged_contact_follow_it(tenant):
    a, b, c = (contact_create(tenant=tenant, name=name) for name in "ABC")
    contact_merge(tenant_id=tenant.pk, contact_id=b.pk, merged_contact_id=c.pk, merged_by="x")
    contact_merge(tenant_id=tenant.pk, contact_id=a.pk, merged_contact_id=b.pk, merged_by="x")
    assert list(ContactMerge.objects.filter(contact=a).values_list("merged_contact_id", flat=True)) == [c.pk, b.pk]


@pytest.mark.django_db
def test_a_contact_is_not_merged_into_itself_nor_with_another_tenants(tenant, other_tenant):
    ada = contact_create(tenant=tenant, name="Ada")
    theirs = contact_create(tenant=other_tenant, name="Not yours")
    with pytest.raises(ApplicationError) as same:
        contact_merge(tenant_id=tenant.pk, contact_id=ada.pk, merged_contact_id=ada.pk, merged_by="x")
    assert same.value.code == "same_contact"
    with pytest.raises(ApplicationError) as other:
        contact_merge(tenant_id=tenant.pk, contact_id=ada.pk, merged_contact_id=theirs.pk, merged_by="x")
    assert (other.value.code, other.value.status) == ("not_found", 404)
    with pytest.raises(NotFound):
        contact_merge(tenant_id=tenant.pk, contact_id=theirs.pk, merged_contact_id=ada.pk, merged_by="x")
    assert Contact.objects.filter(pk__in=[ada.pk, theirs.pk]).count() == 2
    assert not ContactMerge.objects.exists()


@pytest.mark.django_db
def test_integrators_subscribed_hear_of_the_merge(settings, tenant):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    webhook_subscription_create(tenant=tenant, url="http://127.0.0.1:9/hooks", event_types=["contact.merged"])
    a, b = contact_create(tenant=tenant, name="A"), contact_create(tenant=tenant, name="B")
    contact_merge(tenant_id=tenant.pk, contact_id=a.pk, merged_contact_id=b.pk, merged_by="x")
    event = WebhookEvent.objects.get(tenant=tenant)
    assert (event.type, event.payload) == ("contact.merged", {"kept_contact_id": a.pk, "merged_contact_id": b.pk})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_messages_arriving_during_a_merge_are_neither_lost_nor_stored_twice(tenant, sms):
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections are PostgreSQL's")
    first = texted(sms, "Hello", 0)
    twin = first.contact
    ada = contact_create(tenant=tenant, name="Ada")
    contact_identity_add(contact=ada, kind="email", value="ada@example.com", verified=True)
    texts = 40
    started = threading.Event()
    failures: list[BaseException] = []

    def customer() -> None:
        try:
            for n in range(1, texts + 1):
                # Each text starts a conversation of its own (the last one was closed): written with the
                # contact the sender resolved to, the moment a merge would delete it under it.
                Conversation.objects.update(status=ConversationStatus.CLOSED)
                texted(sms, f"message {n}", n)
                if n == 3:
                    started.set()
        except BaseException as exc:
            failures.append(exc)
        finally:
            started.set()
            connection.close()

    thread = threading.Thread(target=customer)
    thread.start()
    assert started.wait(30)
    contact_merge(tenant_id=tenant.pk, contact_id=ada.pk, merged_contact_id=twin.pk, merged_by="x")
    thread.join(60)
    assert not failures, failures
    bodies = list(Message.objects.filter(sender_kind="visitor").values_list("body", flat=True))
    assert sorted(bodies) == sorted(["Hello"] + [f"message {n}" for n in range(1, texts + 1)])  # each once
    assert set(Conversation.objects.values_list("contact_id", flat=True)) == {ada.pk}
    assert not Contact.objects.filter(pk=twin.pk).exists()
    assert Conversation.objects.count() == texts + 1
