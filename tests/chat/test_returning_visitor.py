"""A returning visitor (same browser: same signed visitor token) is the same contact, with its history.

Typed e-mails and phones stay unverified and link nothing; another token is another contact.
"""

from __future__ import annotations

import pytest

from chat.models import Conversation
from chat.selectors import VisitorActor, conversation_has_history
from chat.tokens import visitor_token_read
from contactcenter.models import Contact, ContactIdentity, IdentityKind
from queueing.services import conversation_end
from tests.chat.test_widget_api import start

pytestmark = pytest.mark.django_db


def chat_once(client, widget, answers, token=None) -> dict:
    """Starts a chat through the widget API, then the visitor ends it (a later start is then a new chat)."""
    response = start(client, widget, {"answers": answers, "message": "Hello"}, token=token)
    assert response.status_code == 201, response.json()
    data = response.json()
    claims = visitor_token_read(data["token"])
    visitor = VisitorActor(tenant_id=claims.tenant_id, widget_id=claims.widget_id, visitor_id=claims.visitor_id)
    conversation_end(actor=visitor, conversation_id=data["conversation"]["id"])
    return data


def contact_of(data: dict) -> Contact:
    return Conversation.objects.select_related("contact").get(pk=data["conversation"]["id"]).contact


def test_the_same_token_is_the_same_contact_with_its_history(client, widget, queue, online):
    first = chat_once(client, widget, {"name": "Jane"})
    second = chat_once(client, widget, {"name": "Jane"}, token=first["token"])
    third = chat_once(client, widget, {"name": "Jane"}, token=second["token"])

    assert first["visitor_id"] == second["visitor_id"] == third["visitor_id"]
    assert first["conversation"]["id"] != second["conversation"]["id"] != third["conversation"]["id"]
    contact = contact_of(first)
    assert contact_of(second) == contact == contact_of(third)
    assert Contact.objects.for_tenant(widget.tenant).count() == 1
    assert Conversation.objects.filter(contact=contact).count() == 3
    # One web identity, proven by the token, so the console offers the earlier chats ("load older messages").
    web = ContactIdentity.objects.get(contact=contact, kind=IdentityKind.WEB)
    assert (web.value, web.verified) == (first["visitor_id"], True)
    latest = Conversation.objects.get(pk=third["conversation"]["id"])
    assert conversation_has_history(latest)
    assert not conversation_has_history(Conversation.objects.get(pk=first["conversation"]["id"]))


def test_another_token_is_another_contact(client, widget, queue, online):
    first = chat_once(client, widget, {"name": "Jane"})
    stranger = chat_once(client, widget, {"name": "Jane"})  # same name, another browser
    assert stranger["visitor_id"] != first["visitor_id"]
    assert contact_of(stranger) != contact_of(first)
    assert not conversation_has_history(Conversation.objects.get(pk=stranger["conversation"]["id"]))


def test_a_typed_email_links_nothing(client, widget, queue, online):
    jane = chat_once(client, widget, {"name": "Jane", "email": "jane@example.org"})
    # Someone else types Jane's address: a new contact, not Jane's history.
    impostor = chat_once(client, widget, {"name": "Jane", "email": "Jane@Example.org"})
    assert contact_of(impostor) != contact_of(jane)
    assert not conversation_has_history(Conversation.objects.get(pk=impostor["conversation"]["id"]))
    typed = ContactIdentity.objects.filter(kind=IdentityKind.EMAIL, value="jane@example.org")
    assert typed.count() == 2
    assert not typed.filter(verified=True).exists()

    # Jane returns in her own browser and types another address: still Jane, the address unverified.
    back = chat_once(client, widget, {"name": "Jane", "email": "other@example.org"}, token=jane["token"])
    assert contact_of(back) == contact_of(jane)
    assert not ContactIdentity.objects.filter(value="other@example.org", verified=True).exists()


def test_a_returning_visitor_of_before_this_rule_joins_its_oldest_contact(client, widget, queue, online):
    """Before the rule every chat made a new contact carrying the same (unverified) web identity."""
    first = chat_once(client, widget, {"name": "Jane"})
    older = contact_of(first)
    ContactIdentity.objects.filter(contact=older).update(verified=False)
    duplicate = Contact.objects.create(tenant=widget.tenant, name="Jane")
    ContactIdentity.objects.create(
        tenant=widget.tenant, contact=duplicate, kind=IdentityKind.WEB, value=first["visitor_id"], verified=False
    )
    back = chat_once(client, widget, {"name": "Jane"}, token=first["token"])
    assert contact_of(back) == older
    assert ContactIdentity.objects.get(contact=older, kind=IdentityKind.WEB).verified is True
