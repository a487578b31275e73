"""Agent-started sessions (seed 003): the account checked against the channel, the contact found or made, no second
open session with the same customer on a channel (the open one named), a closed one reopened, the session the
starter's own, and the first message relayed (Twilio mocked at its HTTP edge only; WhatsApp's 24-hour rule)."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentProfile
from channels_switch.models import Delivery, SandboxMessage
from channels_switch.services import (
    SessionExists,
    TemplateFirst,
    account_normalise,
    connector_save,
    delivery_attempt,
    inbound_receive,
    session_reopen,
    session_start,
)
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import agent_actor_for
from chat.services import message_post
from contactcenter.errors import ApplicationError
from contactcenter.models import Contact, ContactIdentity
from contactcenter.realtime import agent_group
from queueing.models import ConversationRoute, Offer
from queueing.services import conversation_end
from tests.channels_switch.twilio_support import ACCOUNT_SID, CUSTOMER, twilio_connector
from tests.factories import (
    ContactFactory,
    ContactIdentityFactory,
    DispositionFactory,
    MembershipFactory,
    WhatsAppTemplateFactory,
)

pytestmark = pytest.mark.django_db

MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def sms(tenant):
    return connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")


@pytest.fixture
def whatsapp(tenant):
    return connector_save(tenant=tenant, kind="whatsapp", provider="sandbox", from_address="+14155550111")


@pytest.fixture
def email(tenant):
    return connector_save(tenant=tenant, kind="email", provider="sandbox", from_address="support@acme.example")


def _colleague(tenant):
    return MembershipFactory(tenant=tenant, role="agent").user


def start(agent, connector, account=CUSTOMER, **kwargs):
    return session_start(actor=agent_actor_for(agent), connector_id=connector.pk, account=account, **kwargs)


def refused(call) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        call()
    return caught.value


# --- the account must be the kind the channel reaches ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "account", "words"),
    [
        ("sms", "jane@example.com", "SMS needs a phone number in international format, like +14155550123."),
        ("whatsapp", "jane@example.com", "WhatsApp needs a phone number in international format"),
        ("sms", "07911 123456", "Start with + and the country code."),
        ("sms", "+44 7911", "+44 7911 is not a valid phone number."),
        ("whatsapp", "+1 555 0100", "not a valid phone number"),
        ("sms", "   ", "SMS needs a phone number"),
        ("email", "+447911123456", "Email needs an email address, like jane@example.com. A phone number"),
        ("email", "07911 123456", "Email needs an email address"),
        ("email", "jane@", "jane@ is not a valid email address."),
    ],
)
def test_the_wrong_kind_of_account_is_refused_saying_what_the_channel_needs(kind, account, words):
    error = refused(lambda: account_normalise(kind=kind, account=account))
    assert error.code == "account_kind"
    assert words in error.message
    assert error.fields == {"account": [error.message]}


@pytest.mark.parametrize(
    ("kind", "account", "stored"),
    [
        ("sms", "+44 7911 123456", "+447911123456"),
        ("whatsapp", "+1 (415) 555-0123", "+14155550123"),
        ("email", " Jane@Example.COM ", "jane@example.com"),
    ],
)
def test_a_right_account_is_stored_in_its_canonical_form(kind, account, stored):
    assert account_normalise(kind=kind, account=account) == stored


def test_a_session_with_a_wrong_account_stores_nothing(tenant, agent, sms, email):
    assert refused(lambda: start(agent, sms, "jane@example.com")).code == "account_kind"
    assert refused(lambda: start(agent, email, CUSTOMER)).code == "account_kind"
    assert refused(lambda: start(agent, sms, "447911123456")).code == "account_kind"
    assert not Conversation.objects.exists() and not Contact.objects.exists()


# --- whose connector and contact -----------------------------------------------------------------------------


def test_another_tenants_connector_or_contact_is_not_found(tenant, other_tenant, agent, sms):
    theirs = connector_save(tenant=other_tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    error = refused(lambda: start(agent, theirs))
    assert (error.code, error.status) == ("not_found", 404)
    their_contact = ContactFactory(tenant=other_tenant, name="Other")
    error = refused(lambda: start(agent, sms, contact_id=their_contact.pk))
    assert (error.code, error.status) == ("not_found", 404)
    assert not Conversation.objects.exists()


def test_a_disabled_connector_is_refused(tenant, agent, sms):
    sms.enabled = False
    sms.save()
    error = refused(lambda: start(agent, sms))
    assert (error.code, error.status) == ("channel_off", 409)
    assert "The SMS channel is turned off" in error.message


def test_a_member_without_an_agent_profile_is_refused(tenant, agent, sms):
    AgentProfile.objects.filter(user=agent).delete()
    assert refused(lambda: start(agent, sms)).code == "forbidden"


# --- the contact ---------------------------------------------------------------------------------------------


def test_a_new_customer_becomes_a_contact_with_the_account_unverified(tenant, agent, sms):
    started = start(agent, sms, "+44 7911 123456", contact_name="Jane Doe")
    contact = started.conversation.contact
    assert contact.name == "Jane Doe"
    identity = ContactIdentity.objects.get(contact=contact)
    assert (identity.kind, identity.value, identity.verified) == ("phone", CUSTOMER, False)


def test_the_contact_holding_the_account_is_found(tenant, agent, sms, email):
    known = ContactFactory(tenant=tenant, name="Jane")
    ContactIdentityFactory(tenant=tenant, contact=known, kind="email", value="jane@example.com", verified=True)
    started = start(agent, email, "JANE@example.com", contact_name="ignored")
    assert started.conversation.contact_id == known.pk
    assert Contact.objects.count() == 1 and ContactIdentity.objects.count() == 1


def test_a_contact_picked_gets_the_account_added(tenant, agent, sms):
    jane = ContactFactory(tenant=tenant, name="Jane")
    started = start(agent, sms, contact_id=jane.pk)
    assert started.conversation.contact_id == jane.pk
    assert list(ContactIdentity.objects.filter(contact=jane).values_list("kind", "value")) == [("phone", CUSTOMER)]


def test_an_account_another_contact_holds_verified_is_refused_for_the_contact_picked(tenant, agent, sms):
    owner = ContactFactory(tenant=tenant, name="Owner")
    ContactIdentityFactory(tenant=tenant, contact=owner, kind="phone", value=CUSTOMER, verified=True)
    jane = ContactFactory(tenant=tenant, name="Jane")
    error = refused(lambda: start(agent, sms, contact_id=jane.pk))
    assert error.code == "account_taken" and "Owner" in error.message


def test_a_contact_whose_messages_go_to_another_number_is_refused(tenant, agent, sms):
    jane = ContactFactory(tenant=tenant, name="Jane")
    ContactIdentityFactory(tenant=tenant, contact=jane, kind="phone", value="+14155550123", verified=True)
    error = refused(lambda: start(agent, sms, contact_id=jane.pk))
    assert error.code == "contact_address_differs"
    assert "Jane's SMS messages go to +14155550123" in error.message
    assert not ContactIdentity.objects.filter(value=CUSTOMER).exists()  # rolled back


def test_a_customer_who_opted_out_is_refused(tenant, agent, sms):
    jane = ContactFactory(tenant=tenant, name="Jane")
    ContactIdentityFactory(tenant=tenant, contact=jane, kind="phone", value=CUSTOMER, opted_out_at=timezone.now())
    assert refused(lambda: start(agent, sms)).code == "opted_out"


# --- one open session per customer and channel ---------------------------------------------------------------


def test_no_second_open_session_the_open_one_is_named(tenant, agent, sms, email):
    first = start(agent, sms, contact_name="Jane").conversation
    error = refused(lambda: start(agent, sms, "+44 7911 123 456"))
    assert isinstance(error, SessionExists)
    assert (error.code, error.status, error.conversation_id) == ("session_exists", 409, first.pk)
    assert error.as_dict()["conversation_id"] == first.pk
    assert Conversation.objects.count() == 1
    # Another channel is another session.
    ContactIdentityFactory(tenant=tenant, contact=first.contact, kind="email", value="jane@example.com")
    assert start(agent, email, "jane@example.com").conversation.contact_id == first.contact_id


def test_a_waiting_inbound_conversation_counts_as_open(tenant, agent, sms):
    inbound = inbound_receive(connector=sms, provider_id="SM1", sender=CUSTOMER, body="Hi")
    error = refused(lambda: start(agent, sms))
    assert isinstance(error, SessionExists) and error.conversation_id == inbound.conversation_id


def test_a_closed_session_is_reopened_for_the_agent_who_reopens_it(
    tenant, agent, sms, published, django_capture_on_commit_callbacks
):
    started = start(agent, sms, contact_name="Jane").conversation
    disposition = DispositionFactory(tenant=tenant)
    conversation_end(actor=agent_actor_for(agent), conversation_id=started.pk, disposition_id=disposition.pk)
    colleague_actor = agent_actor_for(_colleague(tenant))
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reopened = session_reopen(actor=colleague_actor, conversation_id=started.pk, body="Back again")
    conversation = reopened.conversation
    assert reopened.reopened and conversation.pk == started.pk
    assert (conversation.status, conversation.assignee_id, conversation.closed_at) == (
        ConversationStatus.OPEN,
        colleague_actor.user.pk,
        None,
    )
    assert Delivery.objects.get(message=reopened.message).to_address == CUSTOMER
    assert (
        agent_group(tenant.pk, colleague_actor.user.pk),
        {"type": "conversation.assigned", "conversation_id": started.pk},
    ) in [(group, event) for group, event in published]
    # Now open: a new session is refused and names it; reopening it again too.
    assert refused(lambda: start(agent, sms)).conversation_id == started.pk
    assert refused(lambda: session_reopen(actor=colleague_actor, conversation_id=started.pk)).code == "session_exists"


def test_reopen_is_refused_while_another_session_with_the_customer_is_open(tenant, agent, sms):
    old = start(agent, sms, contact_name="Jane").conversation
    Conversation.objects.filter(pk=old.pk).update(status=ConversationStatus.CLOSED, closed_at=timezone.now())
    new = start(agent, sms).conversation
    error = refused(lambda: session_reopen(actor=agent_actor_for(agent), conversation_id=old.pk))
    assert error.code == "session_exists" and error.conversation_id == new.pk


def test_reopen_refuses_a_web_chat_and_another_tenants_conversation(tenant, other_tenant, agent, assigned):
    Conversation.objects.filter(pk=assigned.pk).update(status=ConversationStatus.CLOSED)
    assert refused(lambda: session_reopen(actor=agent_actor_for(agent), conversation_id=assigned.pk)).code == (
        "not_a_session"
    )
    their = Conversation.objects.create(
        tenant=other_tenant, contact=ContactFactory(tenant=other_tenant), channel="sms", status="closed"
    )
    assert refused(lambda: session_reopen(actor=agent_actor_for(agent), conversation_id=their.pk)).status == 404


# --- the starter's own, at once ------------------------------------------------------------------------------


def test_the_session_is_assigned_to_the_starter_open_with_no_queue_or_offer(
    tenant, agent, sms, published, django_capture_on_commit_callbacks
):
    before = AgentProfile.objects.get(user=agent).idle_since
    with django_capture_on_commit_callbacks(execute=True):
        started = start(agent, sms, contact_name="Jane")
    conversation = started.conversation
    assert (conversation.status, conversation.assignee_id, conversation.channel) == ("open", agent.pk, "sms")
    assert started.message is None and not started.reopened
    assert not ConversationRoute.objects.exists() and not Offer.objects.exists()
    notice = Message.objects.get(conversation=conversation)
    assert (notice.event, notice.is_private) == ("session.started", True)
    assert AgentProfile.objects.get(user=agent).idle_since != before
    assigned = {"type": "conversation.assigned", "conversation_id": conversation.pk}
    assert (agent_group(tenant.pk, agent.pk), assigned) in published
    # The agent writes at once; the relay addresses the account.
    posted = message_post(actor=agent_actor_for(agent), conversation_id=conversation.pk, body="Hello", client_id="c1")
    assert Delivery.objects.get(message=posted.message).to_address == CUSTOMER


def test_a_session_counts_against_the_agents_cap(tenant, agent, sms, email):
    AgentProfile.objects.filter(user=agent).update(max_chats=1)
    start(agent, sms, contact_name="Jane")
    error = refused(lambda: start(agent, email, "bob@example.com"))
    assert error.code == "at_capacity"


def test_another_agent_may_not_write_in_it(tenant, agent, sms):
    conversation = start(agent, sms).conversation
    colleague = agent_actor_for(_colleague(tenant))
    assert refused(
        lambda: message_post(actor=colleague, conversation_id=conversation.pk, body="Hi", client_id="x")
    ).code in ("forbidden", "not_found")


# --- the first message, through the relay --------------------------------------------------------------------


def test_the_first_message_goes_to_twilio_exactly(tenant, agent, mocked):
    connector = twilio_connector(tenant, kind="sms")
    mocked.post(MESSAGES_URL, json={"sid": "SM" + "a" * 32, "status": "queued", "num_segments": "1"}, status=201)
    started = start(agent, connector, "+44 7911 123456", contact_name="Jane", body="Hello Jane, about your order")
    message = started.message
    assert (message.sender_kind, message.channel, message.body) == (
        SenderKind.AGENT,
        "sms",
        "Hello Jane, about your order",
    )
    delivery = Delivery.objects.get(message=message)
    assert (delivery.state, delivery.to_address, delivery.connector_id) == ("pending", CUSTOMER, connector.pk)

    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    (call,) = mocked.calls
    sent = parse_qs(call.request.body)
    assert sent == {
        "To": [CUSTOMER],
        "From": ["+14155550100"],
        "Body": ["Hello Jane, about your order"],
        "StatusCallback": [sent["StatusCallback"][0]],
    }
    assert sent["StatusCallback"][0].endswith(f"/hooks/twilio/{connector.webhook_key}/status/")


def test_the_first_email_lands_in_the_sandbox_outbox(tenant, agent, email):
    started = start(agent, email, "jane@example.com", contact_name="Jane", body="Your refund is on its way.")
    delivery = Delivery.objects.get(message=started.message)
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    out = SandboxMessage.objects.get()
    assert (out.channel, out.to_address, out.body) == ("email", "jane@example.com", "Your refund is on its way.")


def test_whatsapp_free_text_is_refused_outside_the_window_and_nothing_is_stored(tenant, agent, whatsapp):
    error = refused(lambda: start(agent, whatsapp, contact_name="Jane", body="Hi Jane!"))
    assert error.code == "outside_whatsapp_window"
    assert not Conversation.objects.exists() and not Delivery.objects.exists()


def test_whatsapp_opens_with_an_approved_template(tenant, agent, whatsapp):
    template = WhatsAppTemplateFactory(tenant=tenant, body="Hi {{1}}, this is Acme about order {{2}}.")
    started = start(
        agent,
        whatsapp,
        contact_name="Jane",
        template=TemplateFirst(template_id=template.pk, variables={"1": "Jane", "2": "A-1"}),
    )
    assert started.message.body == "Hi Jane, this is Acme about order A-1."
    delivery = Delivery.objects.get(message=started.message)
    assert (delivery.template_id, delivery.template_variables, delivery.to_address) == (
        template.pk,
        {"1": "Jane", "2": "A-1"},
        CUSTOMER,
    )
    assert ContactIdentity.objects.get(contact=started.conversation.contact).kind == "whatsapp"
    # Free text stays refused until the customer writes; their answer opens the window.
    actor = agent_actor_for(agent)
    conversation = started.conversation
    assert refused(
        lambda: message_post(actor=actor, conversation_id=conversation.pk, body="Any news?", client_id="w1")
    ).code == ("outside_whatsapp_window")
    answer = inbound_receive(connector=whatsapp, provider_id="SMw1", sender=CUSTOMER, body="Yes?")
    assert answer.conversation_id == conversation.pk
    assert message_post(actor=actor, conversation_id=conversation.pk, body="Great", client_id="w2").created


def test_a_template_on_another_channel_is_refused(tenant, agent, sms):
    template = WhatsAppTemplateFactory(tenant=tenant, body="Hi")
    error = refused(lambda: start(agent, sms, template=TemplateFirst(template_id=template.pk, variables={})))
    assert error.code == "invalid" and "template" in error.fields


def test_the_customers_reply_continues_the_session(tenant, agent, sms):
    conversation = start(agent, sms, contact_name="Jane", body="Hello").conversation
    inbound = inbound_receive(connector=sms, provider_id="SMr1", sender=CUSTOMER, body="Hi, it's Jane")
    assert inbound.conversation_id == conversation.pk
    identity = ContactIdentity.objects.get(contact=conversation.contact)
    assert identity.verified  # the reply proves the number the agent typed


# --- the console's endpoints ---------------------------------------------------------------------------------


def test_the_console_lists_the_channels_that_are_on_with_the_account_they_need(client, tenant, agent, sms, email):
    email.enabled = False
    email.save()
    client.force_login(agent)
    data = client.get(reverse("console-api-session-channels")).json()
    assert data == {
        "connectors": [
            {
                "id": sms.pk,
                "kind": "sms",
                "label": "SMS",
                "account_hint": "SMS needs a phone number in international format, like +14155550123.",
            }
        ]
    }


def test_the_console_finds_contacts_of_its_tenant_by_name_or_address(client, tenant, other_tenant, agent, sms):
    jane = ContactFactory(tenant=tenant, name="Jane Doe")
    ContactIdentityFactory(tenant=tenant, contact=jane, kind="phone", value=CUSTOMER, verified=True)
    ContactFactory(tenant=other_tenant, name="Jane Other")
    closed = Conversation.objects.create(tenant=tenant, contact=jane, channel="sms", status="closed")
    client.force_login(agent)
    url = reverse("console-api-session-contacts")
    found = client.get(url, {"q": "jane"}).json()["contacts"]
    assert found == [
        {
            "id": jane.pk,
            "name": "Jane Doe",
            "identities": [{"kind": "phone", "value": CUSTOMER, "verified": True}],
            "closed_sessions": {"sms": closed.pk},
        }
    ]
    assert [c["id"] for c in client.get(url, {"q": "7911123"}).json()["contacts"]] == [jane.pk]
    assert client.get(url, {"q": "j"}).json() == {"contacts": []}


def test_the_console_starts_a_session_and_answers_errors_in_the_one_shape(tenant, agent, sms):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    url = reverse("console-api-session-start")
    body = {"connector_id": sms.pk, "contact_name": "Jane", "account": "jane@example.com"}
    assert client.post(url, body, content_type="application/json").status_code == 403  # no CSRF token
    client.get(reverse("console"))
    headers = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}

    wrong = client.post(url, body, content_type="application/json", **headers)
    assert wrong.status_code == 400
    message = "SMS needs a phone number in international format, like +14155550123. An email address cannot receive it."
    assert wrong.json() == {"error": {"code": "account_kind", "message": message, "fields": {"account": [message]}}}

    body["account"] = "+44 7911 123456"
    created = client.post(url, body, content_type="application/json", **headers)
    assert created.status_code == 201
    conversation = Conversation.objects.get()
    assert created.json() == {"conversation_id": conversation.pk, "reopened": False}
    assert conversation.assignee_id == agent.pk

    again = client.post(url, body, content_type="application/json", **headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "session_exists"
    assert again.json()["error"]["conversation_id"] == conversation.pk

    bad = client.post(url, {"connector_id": "x", "account": CUSTOMER}, content_type="application/json", **headers)
    assert (bad.status_code, bad.json()["error"]["fields"]) == (400, {"connector_id": ["Expected a number."]})

    Conversation.objects.filter(pk=conversation.pk).update(status="closed")
    reopened = client.post(reverse("console-api-session-reopen", args=[conversation.pk]), **headers)
    assert (reopened.status_code, reopened.json()) == (200, {"conversation_id": conversation.pk, "reopened": True})


def test_integrators_hear_of_the_session_created_and_assigned(tenant, agent, sms, settings):
    from contactcenter.models import WebhookEvent
    from contactcenter.services.webhooks_out import webhook_subscription_create

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    webhook_subscription_create(
        tenant=tenant, url="https://hooks.example.com/in", event_types=["conversation.created", "conversation.assigned"]
    )
    conversation = start(agent, sms, contact_name="Jane").conversation
    events = {event.type: event.payload for event in WebhookEvent.objects.filter(tenant=tenant)}
    assert set(events) == {"conversation.created", "conversation.assigned"}
    assert events["conversation.created"]["id"] == conversation.pk
    assigned = events["conversation.assigned"]
    assert (assigned["conversation"]["id"], assigned["agent_id"], assigned["queue_id"]) == (
        conversation.pk,
        agent.pk,
        None,
    )
