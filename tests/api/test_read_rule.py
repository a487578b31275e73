"""The read rule (docs/protocol.md §4), on every path that shows a conversation's messages.

An agent sees a contact's earlier conversations as the customer saw them; private notes only of the
conversations they are assignee or participant of. Supervisors, admins and API keys see everything of their
tenant; another tenant sees nothing.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client

from chat.models import ConversationStatus, SenderKind
from chat.selectors import (
    HISTORY,
    READ,
    WRITE,
    TeamReader,
    agent_actor_for,
    conversation_get_for,
    conversation_visibility,
)
from contactcenter.errors import NotFound
from contactcenter.models import Role
from contactcenter.services import apikey_create, contact_identity_add
from tests.api.conftest import session_client
from tests.factories import AttachmentFactory, ContactFactory, ConversationFactory, MembershipFactory, MessageFactory

NOTE = "note: refund approved off the record"
PUBLIC = "We have refunded your order."


@pytest.fixture
def world(tenant, other_tenant, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    owner = MembershipFactory(tenant=tenant, role=Role.AGENT).user  # took the earlier chat
    colleague = MembershipFactory(tenant=tenant, role=Role.AGENT).user  # takes the customer's chat today
    supervisor = MembershipFactory(tenant=tenant, role=Role.SUPERVISOR).user
    foreigner = MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user
    contact = ContactFactory(tenant=tenant, name="Jane")
    contact_identity_add(contact=contact, kind="email", value="jane@example.org", verified=True)
    earlier = ConversationFactory(tenant=tenant, contact=contact, assignee=owner, status=ConversationStatus.CLOSED)
    MessageFactory(tenant=tenant, conversation=earlier, body="Where is my refund?")
    public = MessageFactory(
        tenant=tenant, conversation=earlier, sender_kind=SenderKind.AGENT, sender_user=owner, body=PUBLIC
    )
    note = MessageFactory(
        tenant=tenant,
        conversation=earlier,
        sender_kind=SenderKind.AGENT,
        sender_user=owner,
        body=NOTE,
        is_private=True,
    )
    today = ConversationFactory(tenant=tenant, contact=contact, assignee=colleague, status=ConversationStatus.OPEN)
    return SimpleNamespace(
        owner=owner,
        colleague=colleague,
        supervisor=supervisor,
        foreigner=foreigner,
        contact=contact,
        earlier=earlier,
        today=today,
        public=public,
        note=note,
        public_file=AttachmentFactory(tenant=tenant, conversation=earlier, message=public, filename="receipt.txt"),
        note_file=AttachmentFactory(tenant=tenant, conversation=earlier, message=note, filename="internal.txt"),
    )


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_one_policy_decides_every_reader(world, tenant):
    def seen(reader) -> tuple[str | None, bool]:
        visibility = conversation_visibility(reader=reader, conversation=world.earlier)
        return visibility.level, visibility.private_notes

    assert seen(agent_actor_for(world.owner)) == (WRITE, True)
    assert seen(agent_actor_for(world.supervisor)) == (READ, True)
    assert seen(agent_actor_for(world.colleague)) == (HISTORY, False)
    assert seen(TeamReader(tenant_id=tenant.pk, user_id=None, role=Role.ADMIN)) == (READ, True)  # an API key
    assert seen(agent_actor_for(world.foreigner)) == (None, False)
    # Resume (live work) takes WRITE or READ: history is no subscription.
    with pytest.raises(NotFound):
        conversation_get_for(actor=agent_actor_for(world.colleague), conversation_id=world.earlier.pk)
    assert conversation_get_for(actor=agent_actor_for(world.supervisor), conversation_id=world.earlier.pk)[1] == READ


def test_the_contact_page_shows_an_agent_the_history_without_other_agents_notes(world):
    url = f"/console/contacts/{world.contact.pk}/"
    colleague = logged_in(world.colleague).get(url)
    assert colleague.status_code == 200
    page = colleague.content.decode()
    assert PUBLIC in page and "receipt.txt" in page
    assert NOTE not in page and "internal.txt" not in page
    assert "Private notes are shown only to this conversation" in page
    for reader in (world.owner, world.supervisor):
        page = logged_in(reader).get(url).content.decode()
        assert NOTE in page and "internal.txt" in page
    assert logged_in(world.foreigner).get(url).status_code == 404


def test_the_rest_messages_endpoint_leaves_notes_out_for_an_agent_taking_no_part(world, tenant, other_tenant):
    url = f"/api/v1/conversations/{world.earlier.pk}/messages/"

    def bodies(client) -> list[str]:
        response = client.get(url)
        assert response.status_code == 200, response.content
        return [message["body"] for message in response.json()["results"]]

    assert NOTE not in bodies(session_client(world.colleague))
    assert PUBLIC in bodies(session_client(world.colleague))
    assert NOTE in bodies(session_client(world.owner))
    assert NOTE in bodies(session_client(world.supervisor))
    key = apikey_create(tenant=tenant, name="crm").plaintext
    assert NOTE in bodies(Client(HTTP_AUTHORIZATION=f"Bearer {key}"))  # a key acts as admin
    other_key = apikey_create(tenant=other_tenant, name="other").plaintext
    assert Client(HTTP_AUTHORIZATION=f"Bearer {other_key}").get(url).status_code == 404
    assert session_client(world.foreigner).get(url).status_code == 404


def test_console_downloads_follow_the_notes_they_belong_to(world):
    def status(user, attachment) -> int:
        return logged_in(user).get(f"/console/api/attachments/{attachment.pk}/").status_code

    assert status(world.colleague, world.public_file) == 200
    assert status(world.colleague, world.note_file) == 404
    assert status(world.owner, world.note_file) == 200
    assert status(world.supervisor, world.note_file) == 200
    assert status(world.foreigner, world.public_file) == 404


def test_older_messages_in_the_console_leave_out_notes_of_conversations_the_agent_took_no_part_in(world):
    url = f"/console/api/conversations/{world.today.pk}/history"

    def history_bodies(user) -> list[str]:
        response = logged_in(user).get(url)
        assert response.status_code == 200, response.content
        (conversation,) = response.json()["conversations"]
        assert conversation["id"] == world.earlier.pk
        return [message["body"] for message in conversation["messages"]]

    assert PUBLIC in history_bodies(world.colleague)
    assert NOTE not in history_bodies(world.colleague)
    assert NOTE in history_bodies(world.supervisor)
    # The earlier chat's agent takes no part in today's: today's conversation (and its history) is not theirs.
    assert logged_in(world.owner).get(url).status_code == 404
    assert logged_in(world.foreigner).get(url).status_code == 404
