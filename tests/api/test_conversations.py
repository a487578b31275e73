"""Conversations over the API: filtered lists, and their messages paged by seq with a cursor."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from chat.models import Channel, Conversation, ConversationStatus, SenderKind
from tests.factories import AttachmentFactory, ContactFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def created(conversation: Conversation, when: str) -> Conversation:
    # created_at is auto_now_add: set it after the fact, as time passing would.
    Conversation.objects.filter(pk=conversation.pk).update(created_at=datetime.fromisoformat(when))
    return conversation


@pytest.fixture
def inbox(tenant, agent):
    """Four conversations of `tenant`, newest first, each alone in one filter's answer."""
    ada = ContactFactory(tenant=tenant)
    return {
        "open_by_agent": created(
            ConversationFactory(tenant=tenant, status=ConversationStatus.OPEN, assignee=agent),
            "2025-03-04T10:00:00+00:00",
        ),
        "sms": created(ConversationFactory(tenant=tenant, channel=Channel.SMS), "2025-03-03T23:30:00+00:00"),
        "ada": created(ConversationFactory(tenant=tenant, contact=ada), "2025-03-02T12:00:00+00:00"),
        "closed": created(
            ConversationFactory(tenant=tenant, status=ConversationStatus.CLOSED), "2025-03-01T08:00:00+00:00"
        ),
    }


def test_the_list_is_newest_first(api_client, inbox):
    assert ids(api_client.get("/api/v1/conversations/")) == [c.pk for c in inbox.values()]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=open", ["open_by_agent"]),
        ("status=closed", ["closed"]),
        ("channel=sms", ["sms"]),
        ("created_after=2025-03-03", ["open_by_agent", "sms"]),  # a date: from its midnight
        ("created_before=2025-03-02", ["closed"]),  # before that midnight
        ("created_after=2025-03-03T23:30:00Z", ["open_by_agent", "sms"]),  # inclusive
        ("created_before=2025-03-04T11:00:00%2B01:00", ["sms", "ada", "closed"]),  # exclusive, offset honoured
        ("created_after=2025-03-02&created_before=2025-03-04&channel=web", ["ada"]),
        # RFC 3339 allows any offset under 24 hours; PostgreSQL takes ±15:59 at most: the API asks in UTC.
        ("created_after=2025-03-04T02:00:00%2B16:00", ["open_by_agent", "sms"]),  # 2025-03-03T10:00Z
        ("created_before=2025-03-02T12:00:00-23:59", ["ada", "closed"]),  # 2025-03-03T11:59Z
    ],
)
def test_filters(api_client, inbox, query, expected):
    assert ids(api_client.get(f"/api/v1/conversations/?{query}")) == [inbox[name].pk for name in expected]


def test_filter_by_assignee_and_contact(api_client, inbox, agent):
    assert ids(api_client.get(f"/api/v1/conversations/?agent={agent.pk}")) == [inbox["open_by_agent"].pk]
    contact = inbox["ada"].contact_id
    assert ids(api_client.get(f"/api/v1/conversations/?contact={contact}")) == [inbox["ada"].pk]


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=lost", "status"),
        ("channel=fax", "channel"),
        ("agent=me", "agent"),
        ("contact=0", "contact"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2025-02-30", "created_before"),
        ("created_before=2025-02-30T10:00", "created_before"),
        ("created_after=0001-01-01T00:00:00%2B05:00", "created_after"),  # before the year 1 in UTC
        ("created_before=9999-12-31T23:00:00-05:00", "created_before"),  # after the year 9999 in UTC
        ("created_after=2025-01-31T00:00:00%2B24:00", "created_after"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(api_client, query, field):
    response = api_client.get(f"/api/v1/conversations/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert list(response.json()["error"]["fields"]) == [field]


def test_a_conversation_in_detail(agent_session, tenant, agent, admin):
    conversation = ConversationFactory(tenant=tenant, assignee=agent, important=True)
    conversation.participants.add(admin)
    body = agent_session.get(f"/api/v1/conversations/{conversation.pk}/").json()
    assert body["contact"] == {"id": conversation.contact_id, "name": conversation.contact.name}
    assert (body["assignee"], body["participants"], body["important"]) == (agent.pk, [admin.pk], True)
    assert (body["status"], body["channel"], body["last_seq"]) == ("waiting", "web", 0)


# --- messages --------------------------------------------------------------------------------------------


def messages_url(conversation: Conversation, query: str = "") -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages/{'?' + query if query else ''}"


def seqs(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [m["seq"] for m in response.json()["results"]]


def test_messages_come_in_seq_order_with_private_notes(api_client, tenant, agent):
    conversation = ConversationFactory(tenant=tenant)
    MessageFactory(tenant=tenant, conversation=conversation, body="Hello")
    note = MessageFactory(
        tenant=tenant, conversation=conversation, sender_kind=SenderKind.AGENT, sender_user=agent, is_private=True
    )
    AttachmentFactory(tenant=tenant, conversation=conversation, message=note)
    MessageFactory(tenant=tenant)  # another conversation's

    response = api_client.get(messages_url(conversation))
    assert seqs(response) == [1, 2]
    assert response.json()["next"] is None
    first, second = response.json()["results"]
    assert (first["body"], first["sender_kind"], first["is_private"]) == ("Hello", "visitor", False)
    assert (second["is_private"], second["sender_user"]) == (True, agent.pk)
    assert [a["filename"] for a in second["attachments"]] == ["note.txt"]


def test_messages_are_paged_by_seq(api_client, tenant):
    conversation = ConversationFactory(tenant=tenant)
    MessageFactory.create_batch(5, tenant=tenant, conversation=conversation)

    page = api_client.get(messages_url(conversation, "limit=2"))
    assert seqs(page) == [1, 2]
    next_url = page.json()["next"]
    assert next_url.startswith("http://testserver/api/v1/conversations/")
    assert parse_qs(urlsplit(next_url).query) == {"limit": ["2"], "after": ["2"]}

    assert seqs(api_client.get(next_url)) == [3, 4]
    last = api_client.get(messages_url(conversation, "after=4&limit=2"))
    assert (seqs(last), last.json()["next"]) == ([5], None)
    assert seqs(api_client.get(messages_url(conversation, "after=5"))) == []


def test_a_page_holds_50_by_default_and_200_at_most(api_client, tenant):
    conversation = ConversationFactory(tenant=tenant)
    MessageFactory.create_batch(201, tenant=tenant, conversation=conversation)
    assert seqs(api_client.get(messages_url(conversation))) == list(range(1, 51))
    capped = api_client.get(messages_url(conversation, "limit=1000"))
    assert seqs(capped) == list(range(1, 201))
    assert "after=200" in capped.json()["next"]


@pytest.mark.parametrize(
    "query, field", [("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit"), ("limit=many", "limit")]
)
def test_a_bad_cursor_is_a_400_naming_it(api_client, tenant, query, field):
    response = api_client.get(messages_url(ConversationFactory(tenant=tenant), query))
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_message_queries_do_not_grow_with_the_page(api_client, tenant, django_assert_num_queries):
    conversation = ConversationFactory(tenant=tenant)
    api_client.get(messages_url(conversation))  # the key's first use records last_used_at
    for _ in range(3):
        message = MessageFactory(tenant=tenant, conversation=conversation)
        AttachmentFactory(tenant=tenant, conversation=conversation, message=message)
        # key lookup + conversation + messages + their attachments
        with django_assert_num_queries(4):
            api_client.get(messages_url(conversation))
