"""`POST /api/v1/contacts/{id}/merge`: agents and admins merge a duplicate in; the merge shows on the contact."""

from __future__ import annotations

import pytest

from contactcenter.models import Contact
from contactcenter.services import contact_create, contact_identity_add

pytestmark = pytest.mark.django_db


def merge(client, contact_id, other_id):
    return client.post(f"/api/v1/contacts/{contact_id}/merge/", {"merge_contact_id": other_id}, format="json")


def test_an_agent_merges_a_duplicate_and_the_contact_shows_it(tenant, agent, agent_session):
    ada = contact_create(tenant=tenant, name="Ada Lovelace")
    twin = contact_create(tenant=tenant, name="A. Lovelace")
    contact_identity_add(contact=twin, kind="email", value="ada@example.com")
    response = merge(agent_session, ada.pk, twin.pk)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(i["kind"], i["value"]) for i in body["identities"]] == [("email", "ada@example.com")]
    [record] = body["merges"]
    assert record["merged_contact_id"] == twin.pk and record["merged_name"] == "A. Lovelace"
    assert record["merged_by"] == agent.get_full_name() or agent.email
    assert record["conversations_moved"] == 0
    assert agent_session.get(f"/api/v1/contacts/{ada.pk}/").json()["merges"] == body["merges"]
    assert agent_session.get(f"/api/v1/contacts/{twin.pk}/").status_code == 404


def test_refusals_in_the_one_error_shape(tenant, other_tenant, agent_session):
    ada = contact_create(tenant=tenant, name="Ada")
    theirs = contact_create(tenant=other_tenant, name="Theirs")
    same = merge(agent_session, ada.pk, ada.pk)
    assert same.status_code == 400 and same.json()["error"]["code"] == "same_contact"
    assert "merge_contact_id" in same.json()["error"]["fields"]
    unknown = merge(agent_session, ada.pk, theirs.pk)  # another tenant's id answers like a missing one
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert merge(agent_session, theirs.pk, ada.pk).status_code == 404
    bad = agent_session.post(f"/api/v1/contacts/{ada.pk}/merge/", {"merge_contact_id": "x"}, format="json")
    assert bad.status_code == 400 and "merge_contact_id" in bad.json()["error"]["fields"]
    assert Contact.objects.filter(pk__in=[ada.pk, theirs.pk]).count() == 2


def test_it_needs_credentials(tenant, client):
    ada, twin = contact_create(tenant=tenant, name="A"), contact_create(tenant=tenant, name="B")
    response = client.post(
        f"/api/v1/contacts/{ada.pk}/merge/", {"merge_contact_id": twin.pk}, content_type="application/json"
    )
    assert response.status_code in (401, 403)
    assert Contact.objects.filter(pk=twin.pk).exists()
