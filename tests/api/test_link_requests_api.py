"""`POST /api/v1/contacts/{id}/link-requests/`: links per channel, in the documented shapes."""

from __future__ import annotations

import pytest

from channels_switch.models import LinkRequest
from channels_switch.services import connector_save
from contactcenter.services import contact_create

pytestmark = pytest.mark.django_db


def ask(client, contact_id, body):
    return client.post(f"/api/v1/contacts/{contact_id}/link-requests/", body, format="json")


def test_an_agent_gets_a_link_per_channel_on_and_why_not_for_the_others(tenant, agent_session):
    connector_save(tenant=tenant, kind="whatsapp", provider="sandbox", from_address="+14155550111")
    ada = contact_create(tenant=tenant, name="Ada")
    response = ask(agent_session, ada.pk, {"channels": ["whatsapp", "sms"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["contact_id"], body["conversation_id"]) == (ada.pk, None)
    [link] = body["links"]
    assert link["channel"] == "whatsapp" and link["url"].startswith("https://wa.me/14155550111?text=")
    assert link["code"].startswith("SB-") and link["code"] in link["url"].replace("%2D", "-")
    assert body["unavailable"] == {"sms": "No sms channel is on."}
    assert LinkRequest.objects.count() == 1


def test_refusals_in_the_one_error_shape(tenant, other_tenant, agent_session):
    ada = contact_create(tenant=tenant, name="Ada")
    theirs = contact_create(tenant=other_tenant, name="Theirs")
    assert ask(agent_session, theirs.pk, {"channels": ["sms"]}).status_code == 404
    for body in ({"channels": []}, {"channels": ["fax"]}, {}, {"channels": ["sms"], "conversation_id": "x"}):
        response = ask(agent_session, ada.pk, body)
        assert response.status_code == 400, body
        assert response.json()["error"]["fields"], body
    assert not LinkRequest.objects.exists()
