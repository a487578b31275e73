"""Identity verification (docs/identity-verification.md): the customer's backend signs its user id (and optionally
email and phone) with the widget's secret; `POST /widget/api/<key>/identify` signs the visitor in as that user.

Signatures here are made the way a customer's backend makes them, with `hmac` from the standard library, not with
the code under test."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.test import Client, override_settings

from chat.models import Conversation, ConversationStatus, Widget
from chat.services.identity import (
    widget_identity_secret_clear,
    widget_identity_secret_reveal,
    widget_identity_secret_rotate,
)
from chat.tokens import visitor_token_read
from contactcenter.models import Contact, ContactIdentity, ContactMerge, IdentityKind
from tests.chat.test_widget_api import start
from tests.factories import ContactFactory, ConversationFactory, MessageFactory, WidgetFactory

pytestmark = pytest.mark.django_db


def sign(secret: str, *values: str) -> str:
    """As the docs tell a customer's backend to: id, email, phone on lines of their own, trailing empty ones off."""
    message = "\n".join(values).rstrip("\n")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def identify(widget, body, *, token=None, ip="203.0.113.7"):
    headers = {"HTTP_X_VISITOR_TOKEN": token} if token else {}
    return Client(REMOTE_ADDR=ip).post(
        f"/widget/api/{widget.public_key}/identify", data=body, content_type="application/json", **headers
    )


def error_code(response):
    return response.json()["error"]["code"]


@pytest.fixture
def secret(widget):
    return widget_identity_secret_rotate(widget=widget)


def signed_in(widget, secret, user_id="user-42", token=None, **extra):
    values = [user_id, extra.get("email", ""), extra.get("phone", "")]
    response = identify(widget, {"user_id": user_id, "signature": sign(secret, *values), **extra}, token=token)
    assert response.status_code == 200, response.content
    return response.json()


def user_contact(user_id="user-42") -> Contact:
    return ContactIdentity.objects.get(kind=IdentityKind.EXTERNAL, value=user_id, verified=True).contact


def test_the_secret_is_kept_sealed_and_a_signed_user_becomes_a_verified_contact(widget, secret):
    stored = Widget.objects.get(pk=widget.pk)
    assert stored.identity_secret_sealed and secret not in stored.identity_secret_sealed
    assert stored.identity_secret_set_at is not None

    body = signed_in(widget, secret, name="Jane Doe")
    claims = visitor_token_read(body["token"])
    assert claims.visitor_id == body["visitor_id"] and body["conversation"] is None
    contact = user_contact()
    assert contact.name == "Jane Doe"
    web = ContactIdentity.objects.get(kind=IdentityKind.WEB, value=body["visitor_id"])
    assert web.contact == contact and web.verified

    again = signed_in(widget, secret, token=body["token"])  # the next page of the same browser
    assert again["visitor_id"] == body["visitor_id"]
    assert Contact.objects.count() == 1


def test_a_wrong_signature_is_refused_and_changes_nothing(widget, secret, other_tenant):
    other_secret = widget_identity_secret_rotate(widget=WidgetFactory(tenant=other_tenant))
    right = sign(secret, "user-42")
    tampered = right[:-1] + ("1" if right[-1] == "0" else "0")  # one hex digit off
    wrong = [
        {"user_id": "user-42", "signature": sign(secret, "user-43")},  # another user's
        {"user_id": "user-42", "signature": sign(other_secret, "user-42")},  # another widget's secret
        {"user_id": "user-42", "signature": sign(secret, "user-42"), "email": "boss@example.org"},  # unsigned email
        {"user_id": "user-42", "signature": tampered},
        {"user_id": "user-42", "signature": "x" * 200},
    ]
    for body in wrong:
        response = identify(widget, body)
        assert response.status_code == 400 and error_code(response) == "identity_invalid", body
        assert "anonymous" in response.json()["error"]["message"]
    assert not Contact.objects.exists() and not ContactIdentity.objects.exists()

    for body in ({"signature": sign(secret, "")}, {"user_id": 42, "signature": "ab"}, {"user_id": "user-42"}):
        response = identify(widget, body)
        assert response.status_code == 400 and error_code(response) == "invalid", body


def test_a_widget_without_a_secret_takes_no_signed_users(widget):
    response = identify(widget, {"user_id": "user-42", "signature": sign("guess", "user-42")})
    assert response.status_code == 400 and error_code(response) == "identity_not_enabled"
    secret = widget_identity_secret_rotate(widget=widget)
    widget_identity_secret_clear(widget=widget)
    assert error_code(identify(widget, {"user_id": "user-42", "signature": sign(secret, "user-42")})) == (
        "identity_not_enabled"
    )


def test_a_new_secret_stops_the_old_one_at_once(widget, secret):
    signed_in(widget, secret)
    fresh = widget_identity_secret_rotate(widget=widget)
    assert error_code(identify(widget, {"user_id": "user-42", "signature": sign(secret, "user-42")})) == (
        "identity_invalid"
    )
    signed_in(widget, fresh)


def test_the_user_on_another_device_joins_their_open_chat_and_sees_their_history(client, widget, queue, online, secret):
    earlier = ConversationFactory(
        tenant=widget.tenant, contact=ContactFactory(tenant=widget.tenant), status=ConversationStatus.CLOSED
    )
    laptop = signed_in(widget, secret)
    Conversation.objects.filter(pk=earlier.pk).update(contact=user_contact())
    MessageFactory(tenant=widget.tenant, conversation=earlier, body="My order 1182 never came")
    started = start(client, widget, {"answers": {"name": "Jane"}, "message": "Hello"}, token=laptop["token"])
    assert started.status_code == 201, started.content
    chat = started.json()["conversation"]

    phone = signed_in(widget, secret)  # another browser: no token yet
    assert phone["visitor_id"] == laptop["visitor_id"]
    assert phone["conversation"]["id"] == chat["id"]
    history = Client().get(f"/widget/api/{widget.public_key}/history", HTTP_X_VISITOR_TOKEN=phone["token"])
    assert [c["id"] for c in history.json()["conversations"]] == [earlier.pk]
    assert history.json()["conversations"][0]["messages"][-1]["body"] == "My order 1182 never came"


def test_a_chat_begun_before_signing_in_stays_the_users(client, widget, queue, online, secret):
    signed_in(widget, secret)  # the user is known from an earlier visit
    known = user_contact()
    anonymous = start(client, widget, {"answers": {"name": "J"}, "message": "Where is my parcel?"}).json()
    before = Conversation.objects.get(pk=anonymous["conversation"]["id"]).contact_id
    assert before != known.pk

    body = signed_in(widget, secret, token=anonymous["token"])
    assert body["visitor_id"] == anonymous["visitor_id"]
    assert body["conversation"]["id"] == anonymous["conversation"]["id"]
    assert Conversation.objects.get(pk=anonymous["conversation"]["id"]).contact_id == known.pk
    assert not Contact.objects.filter(pk=before).exists()
    merge = ContactMerge.objects.get()
    assert merge.contact_id == known.pk and merge.merged_by == "identity verification"


def test_a_browser_that_is_another_user_keeps_nothing_of_theirs(client, widget, queue, online, secret):
    alice = signed_in(widget, secret, user_id="alice")
    chat = start(client, widget, {"answers": {"name": "A"}, "message": "Hi"}, token=alice["token"]).json()
    bob = signed_in(widget, secret, user_id="bob", token=alice["token"])
    assert bob["visitor_id"] != alice["visitor_id"] and bob["conversation"] is None
    assert user_contact("alice") != user_contact("bob")
    assert Conversation.objects.get(pk=chat["conversation"]["id"]).contact == user_contact("alice")
    history = Client().get(f"/widget/api/{widget.public_key}/history", HTTP_X_VISITOR_TOKEN=bob["token"])
    assert history.json()["conversations"] == []


def test_signed_email_and_phone_become_verified_unless_another_contact_holds_them(widget, secret):
    owner = ContactFactory(tenant=widget.tenant)
    ContactIdentity.objects.create(
        tenant=widget.tenant, contact=owner, kind=IdentityKind.PHONE, value="+14155550123", verified=True
    )
    signed_in(widget, secret, email="Jane@Example.org", phone="+1 415 555 0123")
    contact = user_contact()
    email = ContactIdentity.objects.get(kind=IdentityKind.EMAIL, value="jane@example.org")
    assert email.contact == contact and email.verified
    assert ContactIdentity.objects.get(kind=IdentityKind.PHONE, value="+14155550123").contact == owner

    # Phone signed but not a phone number: the signature holds, the number is refused by name.
    bad = identify(widget, {"user_id": "user-7", "phone": "12", "signature": sign(secret, "user-7", "", "12")})
    assert bad.status_code == 400 and "phone" in bad.json()["error"]["fields"]


def test_another_tenants_user_with_the_same_id_is_another_contact(widget, secret, other_tenant):
    theirs = WidgetFactory(tenant=other_tenant)
    their_secret = widget_identity_secret_rotate(widget=theirs)
    mine = signed_in(widget, secret)
    other = signed_in(theirs, their_secret)
    assert mine["visitor_id"] != other["visitor_id"]
    ids = ContactIdentity.objects.filter(kind=IdentityKind.EXTERNAL, value="user-42")
    assert sorted(i.tenant_id for i in ids) == sorted([widget.tenant_id, other_tenant.pk])
    # A token of the other tenant's widget is no visitor here: a browser of this tenant's user, nothing of theirs.
    again = signed_in(widget, secret, token=other["token"])
    assert again["visitor_id"] != other["visitor_id"]
    web = ContactIdentity.objects.get(kind=IdentityKind.WEB, value=again["visitor_id"])
    assert web.tenant_id == widget.tenant_id
    assert web.contact == ContactIdentity.objects.get(tenant=widget.tenant, kind=IdentityKind.EXTERNAL).contact


@override_settings(IDENTITY_FAILURE_RATE="2/min")
def test_wrong_signatures_are_rate_limited_per_address_and_right_ones_never(widget, secret):
    for _ in range(5):
        signed_in(widget, secret)
    for _ in range(2):
        assert error_code(identify(widget, {"user_id": "user-42", "signature": "0" * 64})) == "identity_invalid"
    limited = identify(widget, {"user_id": "user-42", "signature": "0" * 64})
    assert limited.status_code == 429 and error_code(limited) == "rate_limited"
    assert error_code(identify(widget, {"user_id": "u", "signature": "0" * 64}, ip="198.51.100.9")) == (
        "identity_invalid"
    )


def test_a_secret_is_revealed_only_for_its_own_rotation_and_only_for_a_few_minutes(widget):
    first = widget_identity_secret_rotate(widget=widget)
    first_at = widget.identity_secret_set_at.isoformat()
    assert widget_identity_secret_reveal(widget=widget, set_at=first_at) == first
    second = widget_identity_secret_rotate(widget=widget)
    assert widget_identity_secret_reveal(widget=widget, set_at=first_at) is None  # replaced since
    second_at = widget.identity_secret_set_at.isoformat()
    assert widget_identity_secret_reveal(widget=widget, set_at=second_at) == second
    Widget.objects.filter(pk=widget.pk).update(
        identity_secret_set_at=widget.identity_secret_set_at - timedelta(minutes=6)
    )
    widget.refresh_from_db()
    assert widget_identity_secret_reveal(widget=widget, set_at=widget.identity_secret_set_at.isoformat()) is None
    widget_identity_secret_clear(widget=widget)
    assert widget_identity_secret_reveal(widget=widget, set_at="") is None
