"""The contact page's merge: the likely duplicates (contacts sharing an address) each with a merge button, a
merge by number, what was merged shown on the contact; a CSRF-checked form, for the tenant's own contacts."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation
from contactcenter.models import Contact, ContactMerge
from tests.factories import ContactFactory, ContactIdentityFactory, ConversationFactory

pytestmark = pytest.mark.django_db

XSS = '<img src=x onerror="alert(1)">'


@pytest.fixture
def twins(tenant):
    ada = ContactFactory(tenant=tenant, name="Ada Lovelace")
    ContactIdentityFactory(tenant=tenant, contact=ada, kind="email", value="ada@example.org", verified=True)
    ContactIdentityFactory(tenant=tenant, contact=ada, kind="phone", value="+447700900123", verified=False)
    twin = ContactFactory(tenant=tenant, name=f"A. Lovelace {XSS}")
    ContactIdentityFactory(tenant=tenant, contact=twin, kind="phone", value="+447700900123", verified=True)
    ConversationFactory(tenant=tenant, contact=twin)
    return ada, twin


def test_the_page_offers_the_contacts_sharing_an_address_and_merging_one_moves_it_here(client, agent, twins):
    ada, twin = twins
    unrelated = ContactFactory(tenant=ada.tenant, name="Charles Babbage")
    client.force_login(agent)
    page = reverse("console-contact", args=[ada.pk])
    body = client.get(page).content.decode()
    duplicates = body[body.index('class="cc-duplicates"') :]
    assert f"#{twin.pk}" in duplicates and "Charles Babbage" not in body
    assert XSS not in body  # a name is text

    response = client.post(reverse("console-contact-merge", args=[ada.pk]), {"merge_contact_id": str(twin.pk)})
    assert response.status_code == 302 and response["Location"] == page
    assert not Contact.objects.filter(pk=twin.pk).exists()
    assert Conversation.objects.get().contact_id == ada.pk
    body = client.get(page).content.decode()
    assert "into this contact (1 conversation moved)." in body
    merged = body[body.index('class="cc-merges"') :]
    assert f"#{twin.pk}" in merged and "1 conversation," in merged and "+447700900123" in merged
    assert Contact.objects.filter(pk=unrelated.pk).exists()


def test_a_merge_by_number_that_is_wrong_says_why_and_changes_nothing(client, tenant, other_tenant, agent, twins):
    ada, _twin = twins
    theirs = ContactFactory(tenant=other_tenant)
    client.force_login(agent)
    url = reverse("console-contact-merge", args=[ada.pk])
    for value, shown in (
        ("forty-two", "Give the number of the contact"),
        (str(ada.pk), "cannot be merged into itself"),
        (str(theirs.pk), "No such contact to merge."),
    ):
        client.post(url, {"merge_contact_id": value})
        assert shown in client.get(reverse("console-contact", args=[ada.pk])).content.decode(), value
    assert not ContactMerge.objects.exists()
    assert (
        client.post(reverse("console-contact-merge", args=[theirs.pk]), {"merge_contact_id": ada.pk}).status_code == 404
    )


def test_the_form_needs_its_csrf_token_and_a_signed_in_member(tenant, agent, twins):
    ada, twin = twins
    url = reverse("console-contact-merge", args=[ada.pk])
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post(url, {"merge_contact_id": twin.pk}).status_code in (302, 403)
    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(agent)
    assert signed_in.post(url, {"merge_contact_id": twin.pk}).status_code == 403  # no token
    assert signed_in.get(url).status_code == 405
    assert Contact.objects.filter(pk=twin.pk).exists()
