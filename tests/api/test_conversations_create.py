"""`POST /api/v1/conversations/`: an integrator starts a session for an agent with a customer on SMS, WhatsApp or
email (seed 003): the account checked against the channel, references of the caller's tenant only, one open
session per customer and channel (the open one named), the first message relayed with its delivery, WhatsApp's
24-hour rule; every refusal in the one error shape, and the operation documented with its examples."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
import responses

from channels_switch.models import Delivery
from channels_switch.services import connector_save, delivery_attempt
from chat.models import Conversation
from contactcenter.models import ContactIdentity
from tests.channels_switch.twilio_support import ACCOUNT_SID, CUSTOMER, twilio_connector
from tests.factories import ContactFactory, MembershipFactory, WhatsAppTemplateFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversations/"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def mocked():
    """Twilio's HTTP edge, mocked (requests only): the test registers answers and reads the exact requests."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sms(tenant):
    return connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")


def post(client, **body):
    return client.post(URL, body, format="json")


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "fields"} <= set(body["error"])
    return body["error"]


def test_a_session_is_started_for_the_agent_named(api_client, tenant, agent, sms):
    response = post(
        api_client, connector_id=sms.pk, contact_name="Jane Doe", account="+44 7911 123456", agent_id=agent.pk
    )
    assert response.status_code == 201, response.content
    conversation = Conversation.objects.get()
    data = response.json()
    assert data["id"] == conversation.pk
    assert (data["channel"], data["status"], data["assignee"]) == ("sms", "open", agent.pk)
    assert data["contact"]["name"] == "Jane Doe"
    assert ContactIdentity.objects.get().value == CUSTOMER
    # It lists like any conversation.
    assert [row["id"] for row in api_client.get(URL, {"agent": agent.pk}).json()["results"]] == [conversation.pk]


@pytest.mark.parametrize(
    ("kind", "account", "needed"),
    [
        ("sms", "jane@example.com", "SMS needs a phone number in international format, like +14155550123."),
        ("sms", "4155550123", "SMS needs a phone number in international format"),
        ("sms", "+1 415 555", "SMS needs a phone number in international format"),
        ("whatsapp", "jane@example.com", "WhatsApp needs a phone number in international format"),
        ("email", "+14155550123", "Email needs an email address, like jane@example.com."),
        ("email", "not-an-address", "Email needs an email address"),
    ],
)
def test_the_wrong_kind_of_account_is_refused_on_its_field(api_client, tenant, agent, kind, account, needed):
    from_address = "support@acme.example" if kind == "email" else "+14155550100"
    connector = connector_save(tenant=tenant, kind=kind, provider="sandbox", from_address=from_address)
    body = error(post(api_client, connector_id=connector.pk, account=account, agent_id=agent.pk), 400)
    assert body["code"] == "account_kind"
    assert needed in body["message"] and body["fields"] == {"account": [body["message"]]}
    assert not Conversation.objects.exists()


def test_references_of_another_tenant_are_refused(api_client, tenant, other_tenant, agent, sms):
    theirs = connector_save(tenant=other_tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    body = error(post(api_client, connector_id=theirs.pk, account=CUSTOMER, agent_id=agent.pk), 400)
    assert set(body["fields"]) == {"connector_id"}
    their_contact = ContactFactory(tenant=other_tenant)
    body = error(
        post(api_client, connector_id=sms.pk, contact_id=their_contact.pk, account=CUSTOMER, agent_id=agent.pk), 400
    )
    assert set(body["fields"]) == {"contact_id"}
    their_agent = MembershipFactory(tenant=other_tenant, role="agent").user
    body = error(post(api_client, connector_id=sms.pk, account=CUSTOMER, agent_id=their_agent.pk), 400)
    assert body["fields"] == {"agent_id": ["No such teammate in your tenant."]}
    assert not Conversation.objects.exists()


def test_the_agent_is_required(api_client, sms):
    body = error(post(api_client, connector_id=sms.pk, account=CUSTOMER), 400)
    assert set(body["fields"]) == {"agent_id"}


def test_a_disabled_connector_is_refused(api_client, agent, sms):
    sms.enabled = False
    sms.save()
    assert error(post(api_client, connector_id=sms.pk, account=CUSTOMER, agent_id=agent.pk), 409)["code"] == (
        "channel_off"
    )


def test_a_second_open_session_is_refused_with_the_open_ones_id(api_client, agent, sms):
    first = post(api_client, connector_id=sms.pk, account=CUSTOMER, agent_id=agent.pk).json()
    body = error(post(api_client, connector_id=sms.pk, account="+447911123456", agent_id=agent.pk), 409)
    assert (body["code"], body["conversation_id"]) == ("session_exists", first["id"])
    assert Conversation.objects.count() == 1


def test_the_first_message_goes_out_through_twilio(api_client, tenant, agent, mocked):
    connector = twilio_connector(tenant, kind="sms")
    mocked.post(MESSAGES_URL, json={"sid": "SM" + "c" * 32, "status": "queued", "num_segments": "1"}, status=201)
    response = post(
        api_client,
        connector_id=connector.pk,
        account=CUSTOMER,
        agent_id=agent.pk,
        message="Hello, this is Acme about your order.",
        client_id="first-1",
    )
    assert response.status_code == 201, response.content
    delivery = Delivery.objects.get()
    assert (delivery.message.conversation_id, delivery.message.client_id) == (response.json()["id"], "first-1")
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    (call,) = mocked.calls
    sent = parse_qs(call.request.body)
    assert {name: sent[name] for name in ("To", "From", "Body")} == {
        "To": [CUSTOMER],
        "From": ["+14155550100"],
        "Body": ["Hello, this is Acme about your order."],
    }


@pytest.fixture
def whatsapp(tenant):
    return connector_save(tenant=tenant, kind="whatsapp", provider="sandbox", from_address="+14155550111")


def test_whatsapp_free_text_is_refused_and_a_template_goes(api_client, tenant, agent, whatsapp):
    body = error(
        post(api_client, connector_id=whatsapp.pk, account=CUSTOMER, agent_id=agent.pk, message="Hi there"), 409
    )
    assert body["code"] == "outside_whatsapp_window"
    assert not Conversation.objects.exists()

    template = WhatsAppTemplateFactory(tenant=tenant, body="Hi {{1}}, about order {{2}}.")
    response = post(
        api_client,
        connector_id=whatsapp.pk,
        account=CUSTOMER,
        agent_id=agent.pk,
        template={"id": template.pk, "variables": {"1": "Jane", "2": "A-1"}},
    )
    assert response.status_code == 201, response.content
    delivery = Delivery.objects.get()
    assert (delivery.message.body, delivery.template_id) == ("Hi Jane, about order A-1.", template.pk)


def test_a_message_and_a_template_together_are_refused(api_client, tenant, agent, whatsapp):
    template = WhatsAppTemplateFactory(tenant=tenant, body="Hi")
    body = error(
        post(
            api_client,
            connector_id=whatsapp.pk,
            account=CUSTOMER,
            agent_id=agent.pk,
            message="Hi",
            template={"id": template.pk},
        ),
        400,
    )
    assert set(body["fields"]) == {"template"}


def test_an_agent_session_may_not_create_through_the_api(agent_session, agent, sms):
    assert error(post(agent_session, connector_id=sms.pk, account=CUSTOMER, agent_id=agent.pk), 403)["code"]


def test_updating_or_deleting_a_conversation_stays_refused(api_client, agent, sms):
    conversation_id = post(api_client, connector_id=sms.pk, account=CUSTOMER, agent_id=agent.pk).json()["id"]
    assert api_client.delete(f"{URL}{conversation_id}/").status_code == 405
    assert api_client.patch(f"{URL}{conversation_id}/", {"status": "closed"}, format="json").status_code == 405


def test_the_operation_is_documented_with_examples_and_the_error_shape(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/conversations/"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) >= {"SMSWithAFirstMessage", "WhatsAppWithAnApprovedTemplate"}
    assert "account_kind" in operation["description"] and "session_exists" in operation["description"]
    assert {"201", "400", "409"} <= set(operation["responses"])
    conflict = operation["responses"]["409"]["content"]["application/json"]
    assert conflict["examples"]["ASessionIsOpenAlready"]["value"]["error"]["code"] == "session_exists"
    created = operation["responses"]["201"]["content"]["application/json"]
    assert created["schema"]["$ref"].endswith("/Conversation")
