"""The v1 resources end to end: contacts and identities, widgets, queues and members, agents, records, keys."""

from __future__ import annotations

import pytest
from django.core import mail

from chat.models import ConversationStatus
from contactcenter.models import ApiKey, Membership, Role
from queueing.models import QueueRoute
from tests.factories import (
    ApiKeyFactory,
    CannedTemplateFactory,
    ChannelConnectorFactory,
    ContactFactory,
    ContactIdentityFactory,
    ConversationFactory,
    DispositionFactory,
    MembershipFactory,
    PauseReasonFactory,
    QueueFactory,
    QueueMemberFactory,
    QueueRouteFactory,
    WidgetFactory,
)

pytestmark = pytest.mark.django_db


def post(client, url: str, data: dict):
    return client.post(url, data, format="json")


def patch(client, url: str, data: dict):
    return client.patch(url, data, format="json")


# --- contacts and identities ----------------------------------------------------------------------------


def test_agents_create_and_rename_contacts_admins_delete_them(agent_session, admin_session):
    created = post(agent_session, "/api/v1/contacts/", {"name": "  Ada Lovelace "})
    assert created.status_code == 201
    assert created.json()["name"] == "Ada Lovelace"
    url = f"/api/v1/contacts/{created.json()['id']}/"

    assert patch(agent_session, url, {"name": "Ada King"}).json()["name"] == "Ada King"
    assert agent_session.delete(url).status_code == 403
    assert admin_session.delete(url).status_code == 204
    assert admin_session.get(url).status_code == 404


def test_identities_are_normalised_and_listed_with_the_contact(agent_session, tenant):
    contact = ContactFactory(tenant=tenant)
    url = f"/api/v1/contacts/{contact.pk}/identities/"
    email = post(agent_session, url, {"kind": "email", "value": " Ada@Example.ORG "})
    phone = post(agent_session, url, {"kind": "whatsapp", "value": "+44 20 7946 0958", "verified": True})
    assert (email.status_code, email.json()["value"]) == (201, "ada@example.org")
    assert phone.json() | {"id": None, "created_at": None} == {
        "id": None,
        "kind": "whatsapp",
        "value": "+442079460958",
        "verified": False,  # the API adds unverified addresses only
        "created_at": None,
    }

    again = post(agent_session, url, {"kind": "email", "value": "ADA@example.org"})
    assert again.json()["id"] == email.json()["id"]
    listed = agent_session.get(f"/api/v1/contacts/{contact.pk}/").json()["identities"]
    assert sorted(i["value"] for i in listed) == ["+442079460958", "ada@example.org"]


def test_an_identity_of_an_unknown_kind_is_refused(agent_session, tenant):
    contact = ContactFactory(tenant=tenant)
    response = post(agent_session, f"/api/v1/contacts/{contact.pk}/identities/", {"kind": "fax", "value": "1"})
    assert list(response.json()["error"]["fields"]) == ["kind"]


def test_removing_an_identity(agent_session, tenant):
    identity = ContactIdentityFactory(tenant=tenant)
    url = f"/api/v1/contacts/{identity.contact_id}/identities/{identity.pk}/"
    assert agent_session.delete(url).status_code == 204
    assert agent_session.get(f"/api/v1/contacts/{identity.contact_id}/identities/").json()["results"] == []


def test_an_identity_is_reached_only_through_its_own_contact(api_client, tenant):
    identity = ContactIdentityFactory(tenant=tenant)
    elsewhere = ContactFactory(tenant=tenant)
    assert api_client.get(f"/api/v1/contacts/{elsewhere.pk}/identities/{identity.pk}/").status_code == 404


# --- widgets ----------------------------------------------------------------------------------------------


def test_widget_settings_go_through_the_service(api_client):
    response = post(
        api_client,
        "/api/v1/widgets/",
        {
            "name": "Shop",
            "allowed_origins": ["https://Shop.Example.com/", "https://shop.example.com"],
            "accent_color": "#0f766e",
            "survey_fields": [{"key": "order", "label": "Order number"}],
            "public_key": "wk_chosen",
        },
    )
    assert response.status_code == 201
    widget = response.json()
    assert widget["allowed_origins"] == ["https://shop.example.com"]
    assert widget["survey_fields"] == [{"key": "order", "label": "Order number", "kind": "text", "required": False}]
    assert widget["public_key"].startswith("wk_") and widget["public_key"] != "wk_chosen"

    changed = patch(api_client, f"/api/v1/widgets/{widget['id']}/", {"title": "Ask us", "public_key": "wk_x"})
    assert changed.json()["title"] == "Ask us"
    assert changed.json()["public_key"] == widget["public_key"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"allowed_origins": ["https://shop.example.com/path"]}, "allowed_origins"),
        ({"allowed_origins": ["https://*.example.com"]}, "allowed_origins"),
        ({"allowed_file_types": ["text/html"]}, "allowed_file_types"),
        ({"accent_color": "blue"}, "accent_color"),
        ({"survey_fields": [{"key": "a b", "label": "Two words"}]}, "survey_fields"),
    ],
)
def test_widget_settings_are_validated_on_their_field(api_client, data, field):
    response = post(api_client, "/api/v1/widgets/", {"name": "Shop", **data})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_a_widget_with_live_conversations_is_not_deleted(api_client, tenant):
    conversation = ConversationFactory(tenant=tenant, status=ConversationStatus.OPEN)
    response = api_client.delete(f"/api/v1/widgets/{conversation.widget_id}/")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "widget_in_use")


# --- queues and their members -----------------------------------------------------------------------------


def test_a_queue_routes_the_widgets_it_is_given(api_client, tenant):
    shop, blog = WidgetFactory(tenant=tenant), WidgetFactory(tenant=tenant)
    previous = QueueRouteFactory(tenant=tenant, widget=blog).queue

    queue = post(api_client, "/api/v1/queues/", {"name": "Sales", "widgets": [shop.pk, blog.pk]}).json()
    assert sorted(queue["widgets"]) == sorted([shop.pk, blog.pk])
    assert QueueRoute.objects.get(widget=blog).queue_id == queue["id"]  # a widget routes to one queue
    assert api_client.get(f"/api/v1/queues/{previous.pk}/").json()["widgets"] == []

    url = f"/api/v1/queues/{queue['id']}/"
    assert sorted(patch(api_client, url, {"description": "Pre-sales"}).json()["widgets"]) == sorted([shop.pk, blog.pk])
    assert patch(api_client, url, {"widgets": [shop.pk]}).json()["widgets"] == [shop.pk]


def test_queue_members_are_added_and_removed_by_user_id(api_client, tenant, other_tenant):
    queue = QueueFactory(tenant=tenant)
    agent = MembershipFactory(tenant=tenant, user__first_name="Grace", user__last_name="Hopper").user
    url = f"/api/v1/queues/{queue.pk}/members/"

    added = post(api_client, url, {"agent": agent.pk})
    assert added.status_code == 201
    assert added.json() == {"agent": agent.pk, "name": "Grace Hopper", "email": agent.email}
    assert post(api_client, url, {"agent": agent.pk}).status_code == 201  # already there: nothing changes
    assert [m["agent"] for m in api_client.get(url).json()["results"]] == [agent.pk]

    stranger = MembershipFactory(tenant=other_tenant).user
    refused = post(api_client, url, {"agent": stranger.pk})
    assert list(refused.json()["error"]["fields"]) == ["agent"]

    assert api_client.delete(f"{url}{agent.pk}/").status_code == 204
    assert api_client.get(url).json()["results"] == []


# --- agents -----------------------------------------------------------------------------------------------


def test_an_api_key_invites_a_teammate_by_email(api_client, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client, "/api/v1/agents/", {"email": "Grace@Example.com", "first_name": "Grace"})
    assert response.status_code == 201
    agent = response.json()
    assert agent | {"id": None, "created_at": None} == {
        "id": None,
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "",
        "name": "Grace",
        "role": "agent",
        "max_chats": 3,
        "presence": "offline",
        "pause_reason": None,
        "pending": True,
        "created_at": None,
    }
    assert Membership.objects.get(user_id=agent["id"]).tenant == tenant
    (invitation,) = mail.outbox
    assert invitation.to == ["grace@example.com"]
    assert invitation.body.startswith("An administrator invited you")


def test_a_console_admin_invites_in_their_own_name(admin_session, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(admin_session, "/api/v1/agents/", {"email": "grace@example.com", "role": "supervisor"})
    assert mail.outbox[0].body.startswith(f"{admin.get_full_name()} invited you")


def test_a_teammates_role_name_and_chat_cap_change_together(api_client, agent):
    url = f"/api/v1/agents/{agent.pk}/"
    changed = patch(api_client, url, {"role": "supervisor", "last_name": "Hopper", "max_chats": 5}).json()
    assert (changed["role"], changed["last_name"], changed["max_chats"]) == ("supervisor", "Hopper", 5)
    assert changed["pending"] is False

    refused = patch(api_client, url, {"role": "admin", "max_chats": 0})
    assert list(refused.json()["error"]["fields"]) == ["max_chats"]
    assert api_client.get(url).json()["role"] == "supervisor"  # all or nothing


def test_removing_a_teammate(api_client, agent):
    assert api_client.delete(f"/api/v1/agents/{agent.pk}/").status_code == 204
    agent.refresh_from_db()
    assert agent.is_active is False
    assert api_client.get(f"/api/v1/agents/{agent.pk}/").status_code == 404


def test_the_last_admin_stays(api_client, admin):
    response = api_client.delete(f"/api/v1/agents/{admin.pk}/")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "last_admin")


# --- plain records ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, data, change",
    [
        ("/api/v1/templates/", {"name": "Hello", "body": "Hi {visitor_name}"}, {"body": "Hello!"}),
        ("/api/v1/dispositions/", {"name": "Solved", "position": 2}, {"is_active": False}),
        ("/api/v1/pause-reasons/", {"name": "Lunch", "paid": False}, {"name": "Long lunch"}),
        ("/api/v1/channels/", {"kind": "email", "from_address": "Help@Example.com"}, {"enabled": False}),
    ],
)
def test_records_are_created_changed_and_deleted(api_client, url, data, change):
    created = post(api_client, url, data)
    assert created.status_code == 201, created.content
    detail = f"{url}{created.json()['id']}/"
    changed = patch(api_client, detail, change)
    assert changed.status_code == 200
    assert changed.json() | change == changed.json()
    assert [row["id"] for row in api_client.get(url).json()["results"]] == [created.json()["id"]]
    assert api_client.delete(detail).status_code == 204
    assert api_client.get(detail).status_code == 404


def test_a_channel_sender_is_normalised_and_its_provider_checked(api_client):
    twilio = {"provider": "twilio", "account_sid": "AC" + "0" * 32, "secret": "f" * 32}
    sms = post(api_client, "/api/v1/channels/", {"kind": "sms", "from_address": "+1 650 253 0000", **twilio})
    assert sms.json()["from_address"] == "+16502530000"
    wrong = post(api_client, "/api/v1/channels/", {"kind": "email", "provider": "twilio", "from_address": "a@b.co"})
    assert list(wrong.json()["error"]["fields"]) == ["provider"]
    second = post(api_client, "/api/v1/channels/", {"kind": "sms", "from_address": "+1 650 253 0001"})
    assert list(second.json()["error"]["fields"]) == ["kind"]  # one connector per kind


def test_a_disposition_conversations_were_closed_with_is_kept(api_client, tenant):
    disposition = DispositionFactory(tenant=tenant)
    ConversationFactory(tenant=tenant, disposition=disposition)
    response = api_client.delete(f"/api/v1/dispositions/{disposition.pk}/")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "in_use")


def test_a_key_made_in_the_console_remembers_who_made_it(admin_session, admin):
    created = post(admin_session, "/api/v1/api-keys/", {"name": "CRM"}).json()
    assert created["created_by"] == admin.pk


def test_a_revoked_key_stays_listed(api_client, tenant):
    key = ApiKeyFactory(tenant=tenant)
    assert api_client.delete(f"/api/v1/api-keys/{key.pk}/").status_code == 204
    assert api_client.get(f"/api/v1/api-keys/{key.pk}/").json()["revoked_at"] is not None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


# --- list queries -----------------------------------------------------------------------------------------


CHANNEL_KINDS = ["email", "sms", "whatsapp"]


@pytest.mark.parametrize(
    "url, make, queries",
    [
        # key lookup + count + page (+ one per prefetched relation); the cursor-paged lists count nothing
        ("/api/v1/contacts/", lambda t, n: ContactIdentityFactory(tenant=t), 4),  # identities, merges
        ("/api/v1/widgets/", lambda t, n: WidgetFactory(tenant=t), 3),
        ("/api/v1/queues/", lambda t, n: QueueRouteFactory(tenant=t), 4),
        ("/api/v1/agents/", lambda t, n: MembershipFactory(tenant=t, role=Role.AGENT), 3),
        ("/api/v1/templates/", lambda t, n: CannedTemplateFactory(tenant=t), 3),
        ("/api/v1/dispositions/", lambda t, n: DispositionFactory(tenant=t), 3),
        ("/api/v1/pause-reasons/", lambda t, n: PauseReasonFactory(tenant=t), 3),
        ("/api/v1/api-keys/", lambda t, n: ApiKeyFactory(tenant=t), 3),
        ("/api/v1/channels/", lambda t, n: ChannelConnectorFactory(tenant=t, kind=CHANNEL_KINDS[n]), 3),
        ("/api/v1/conversations/", lambda t, n: ConversationFactory(tenant=t), 3),
    ],
)
def test_list_queries_do_not_grow_with_the_rows(api_client, tenant, django_assert_num_queries, url, make, queries):
    api_client.get(url)  # the key's first use records last_used_at: one write, once
    for n in range(3):
        make(tenant, n)
        with django_assert_num_queries(queries):
            response = api_client.get(url)
        assert len(response.json()["results"]) > n


def test_nested_list_queries_do_not_grow_with_the_rows(api_client, tenant, django_assert_num_queries):
    contact, queue = ContactFactory(tenant=tenant), QueueFactory(tenant=tenant)
    api_client.get("/api/v1/contacts/")
    for _ in range(3):
        ContactIdentityFactory(tenant=tenant, contact=contact)
        QueueMemberFactory(tenant=tenant, queue=queue)
        # key lookup + parent lookup + count + page
        with django_assert_num_queries(4):
            api_client.get(f"/api/v1/contacts/{contact.pk}/identities/")
        with django_assert_num_queries(4):
            api_client.get(f"/api/v1/queues/{queue.pk}/members/")
