"""Agents working a chat together: a transfer to a colleague (a normal offer, refused with the reason when they
cannot take it) or to a queue (its place in line kept, never routed back to the transferring agent); an invite
(both chat with the visitor, who sees who joined; when one closes the other goes on)."""

from __future__ import annotations

import pytest

from agents.models import AgentProfile, Presence
from chat.models import Conversation, ConversationStatus, Message
from chat.selectors import VisitorActor, agent_actor_for
from chat.services import conversation_set_disposition, message_post
from contactcenter.errors import ApplicationError, NotFound, PermissionDenied
from contactcenter.models import user_display_name
from queueing.models import ConversationRoute, Offer, OfferStatus
from queueing.selectors import pending_offer_list, queue_place
from queueing.services import (
    conversation_accept,
    conversation_end,
    conversation_invite,
    conversation_request,
    conversation_transfer,
    offer_reject,
)
from queueing.services.collaboration import colleagues_for
from tests.factories import ConversationFactory, MembershipFactory, QueueFactory, QueueMemberFactory

pytestmark = pytest.mark.django_db


def start(widget, n: int):
    return conversation_request(widget=widget, visitor_id=f"v{n}", answers={"name": f"V{n}"}, message="Hi").conversation


def colleague(tenant, queue=None, *, presence=Presence.ONLINE, first_name="Bob"):
    user = MembershipFactory(tenant=tenant).user
    user.first_name = first_name
    user.save(update_fields=["first_name"])
    AgentProfile.objects.filter(user=user).update(presence=presence)
    if queue is not None:
        QueueMemberFactory(tenant=tenant, queue=queue, user=user)
    return user


def notices(conversation) -> list[tuple[str, bool]]:
    return list(
        Message.objects.filter(conversation=conversation, sender_kind="system")
        .order_by("seq")
        .values_list("body", "is_private")
    )


@pytest.fixture
def chat(widget, queue, online):
    """Alice (the queue's online agent) has the visitor's chat."""
    conversation = start(widget, 1)
    conversation_accept(actor=agent_actor_for(online), conversation_id=conversation.pk)
    conversation.refresh_from_db()
    return conversation


def test_a_transfer_to_a_free_colleague_is_a_normal_offer_with_the_history(
    tenant, chat, online, published, django_capture_on_commit_callbacks
):
    bob = colleague(tenant)  # not even a member of the chat's queue: a transfer goes to whom it names
    answered_at = chat.answered_at
    with django_capture_on_commit_callbacks(execute=True):
        conversation_transfer(actor=agent_actor_for(online), conversation_id=chat.pk, to_user_id=bob.pk)
    chat.refresh_from_db()
    assert (chat.status, chat.assignee_id) == (ConversationStatus.WAITING, None)
    offer = Offer.objects.get(conversation=chat, agent=bob)
    assert offer.status == OfferStatus.PENDING
    assert ConversationRoute.objects.get(conversation=chat).transferred_from_id == online.pk
    # The visitor and the agents read who it went to; Alice's consoles drop the tab; Bob's get the offer.
    assert notices(chat)[-1] == (f"{online.first_name or 'Agent'} transferred the chat to Bob.", False)
    events = [(g, e["type"]) for g, e in published]
    assert (f"t{tenant.pk}.agent.{online.pk}", "conversation.unassigned") in events
    assert (f"t{tenant.pk}.agent.{bob.pk}", "offer.new") in events
    # Bob's card says who transferred it, live and in his console's hello.
    new_offer = next(e for g, e in published if e["type"] == "offer.new" and g == f"t{tenant.pk}.agent.{bob.pk}")
    assert new_offer["offer"]["transferred_by"] == user_display_name(online)
    assert [o["transferred_by"] for o in pending_offer_list(actor=agent_actor_for(bob))] == [user_display_name(online)]

    conversation_accept(actor=agent_actor_for(bob), conversation_id=chat.pk)
    chat.refresh_from_db()
    assert (chat.status, chat.assignee_id) == (ConversationStatus.OPEN, bob.pk)
    assert chat.answered_at == answered_at  # the wait was the first answer's, not the transfer's
    assert [body for body, private in notices(chat) if private and "came from the queue" in body] == [
        notices(chat)[1][0]
    ]  # the "came from the queue" line was told once, at the first answer
    # Bob has the history: every message before the transfer is his to read and answer.
    message_post(actor=agent_actor_for(bob), conversation_id=chat.pk, body="Bob here, I can help.", client_id="b1")


def test_a_transfer_to_a_colleague_who_cannot_take_it_is_refused_with_the_reason(tenant, chat, online):
    away = colleague(tenant, presence=Presence.AWAY, first_name="Ada")
    full = colleague(tenant, first_name="Finn")
    AgentProfile.objects.filter(user=full).update(max_chats=0)
    alice = agent_actor_for(online)
    with pytest.raises(ApplicationError) as error:
        conversation_transfer(actor=alice, conversation_id=chat.pk, to_user_id=away.pk)
    assert (error.value.code, error.value.message) == ("agent_unavailable", f"{user_display_name(away)} is away.")
    with pytest.raises(ApplicationError) as error:
        conversation_transfer(actor=alice, conversation_id=chat.pk, to_user_id=full.pk)
    assert error.value.message.endswith("already has 0 chats, their limit.")
    AgentProfile.objects.filter(user=full).update(max_chats=1)
    ConversationFactory(tenant=tenant, status=ConversationStatus.OPEN, assignee=full)
    with pytest.raises(ApplicationError) as error:
        conversation_transfer(actor=alice, conversation_id=chat.pk, to_user_id=full.pk)
    assert error.value.message == f"{user_display_name(full)} already has 1 chat, their limit."
    chat.refresh_from_db()
    assert (chat.status, chat.assignee_id) == (ConversationStatus.OPEN, online.pk)  # nothing changed
    assert not Offer.objects.filter(conversation=chat, agent__in=[away, full]).exists()


def test_another_tenants_agent_or_queue_is_no_target(tenant, other_tenant, chat, online):
    stranger = colleague(other_tenant)
    elsewhere = QueueFactory(tenant=other_tenant, name="Elsewhere")
    alice = agent_actor_for(online)
    with pytest.raises(NotFound):
        conversation_transfer(actor=alice, conversation_id=chat.pk, to_user_id=stranger.pk)
    with pytest.raises(NotFound):
        conversation_transfer(actor=alice, conversation_id=chat.pk, to_queue_id=elsewhere.pk)
    with pytest.raises(NotFound):
        conversation_invite(actor=alice, conversation_id=chat.pk, to_user_id=stranger.pk)
    with pytest.raises(ApplicationError) as error:
        conversation_transfer(actor=alice, conversation_id=chat.pk, to_user_id=stranger.pk, to_queue_id=elsewhere.pk)
    assert error.value.code == "bad_target"


def test_a_transfer_to_a_queue_keeps_the_chats_place_and_never_routes_it_back(
    tenant, widget, queue, chat, online, published, django_capture_on_commit_callbacks
):
    billing = QueueFactory(tenant=tenant, name="Billing")
    QueueMemberFactory(tenant=tenant, queue=billing, user=online)  # Alice is in Billing too
    later = colleague(tenant, queue=billing, presence=Presence.OFFLINE, first_name="Lena")
    # Someone who started after this chat already waits in Billing.
    newer = start(widget, 2)
    ConversationRoute.objects.filter(conversation=newer).update(queue=billing, queue_name="Billing")
    with django_capture_on_commit_callbacks(execute=True):
        conversation_transfer(actor=agent_actor_for(online), conversation_id=chat.pk, to_queue_id=billing.pk)
    route = ConversationRoute.objects.get(conversation=chat)
    assert (route.queue_id, route.queue_name) == (billing.pk, "Billing")
    chat.refresh_from_db()
    assert queue_place(conversation=chat)["position"] == 1  # its original start time: ahead of the newer one
    assert queue_place(conversation=newer)["position"] == 2
    assert notices(chat)[-1][0].endswith("transferred the chat to the Billing team.")
    # Alice is Billing's only online member: it waits rather than coming back to her.
    assert not Offer.objects.filter(conversation=chat, status=OfferStatus.PENDING).exists()
    # Lena comes online: it is hers.
    from queueing.services import agent_presence_change

    agent_presence_change(actor=agent_actor_for(later), presence=Presence.ONLINE)
    assert Offer.objects.get(conversation=chat, status=OfferStatus.PENDING).agent_id == later.pk


def test_a_rejected_transfer_goes_on_to_the_queue_not_back(tenant, queue, chat, online):
    bob = colleague(tenant, first_name="Bob")
    carol = colleague(tenant, queue=queue, first_name="Carol")
    conversation_transfer(actor=agent_actor_for(online), conversation_id=chat.pk, to_user_id=bob.pk)
    offer_reject(actor=agent_actor_for(bob), conversation_id=chat.pk)
    pending = Offer.objects.get(conversation=chat, status=OfferStatus.PENDING)
    assert pending.agent_id == carol.pk  # the queue's next agent; Alice (the transferrer) is passed over


def test_only_the_agent_who_has_the_chat_transfers_it(tenant, chat, online):
    bob = colleague(tenant)
    conversation_invite(actor=agent_actor_for(online), conversation_id=chat.pk, to_user_id=bob.pk)
    with pytest.raises(PermissionDenied):
        conversation_transfer(actor=agent_actor_for(bob), conversation_id=chat.pk, to_user_id=online.pk)


def test_an_invited_colleague_chats_too_and_the_visitor_goes_on_when_one_closes(
    tenant, widget, chat, online, disposition, published, django_capture_on_commit_callbacks
):
    bob = colleague(tenant, first_name="Bob")
    alice = agent_actor_for(online)
    assert [c.user_id for c in colleagues_for(actor=alice, conversation=chat)] == [bob.pk]
    with django_capture_on_commit_callbacks(execute=True):
        conversation_invite(actor=alice, conversation_id=chat.pk, to_user_id=bob.pk)
    assert set(chat.participants.values_list("pk", flat=True)) == {bob.pk}
    assert notices(chat)[-1] == ("Bob joined the chat.", False)  # the visitor sees who joined
    assert (f"t{tenant.pk}.agent.{bob.pk}", "conversation.assigned") in [(g, e["type"]) for g, e in published]
    assert colleagues_for(actor=alice, conversation=chat) == []  # Bob is in it already
    message_post(actor=agent_actor_for(bob), conversation_id=chat.pk, body="Bob here too.", client_id="b1")

    # Alice closes: she leaves, Bob goes on with the visitor (who is told).
    conversation_set_disposition(actor=alice, conversation_id=chat.pk, disposition_id=disposition.pk)
    result = conversation_end(actor=alice, conversation_id=chat.pk)
    assert result.left and not result.closed_now
    chat.refresh_from_db()
    assert (chat.status, chat.assignee_id) == (ConversationStatus.OPEN, bob.pk)
    assert list(chat.participants.all()) == []
    assert notices(chat)[-1][0].endswith("left the chat.")
    visitor = VisitorActor(tenant_id=tenant.pk, widget_id=widget.pk, visitor_id="v1")
    message_post(actor=visitor, conversation_id=chat.pk, body="Thanks both", client_id="v-1")

    # Bob closes: the chat ends.
    assert conversation_end(actor=agent_actor_for(bob), conversation_id=chat.pk).closed_now
    assert Conversation.objects.get(pk=chat.pk).status == ConversationStatus.CLOSED


def test_an_invited_colleague_who_closes_only_leaves(tenant, chat, online, disposition):
    bob = colleague(tenant)
    conversation_invite(actor=agent_actor_for(online), conversation_id=chat.pk, to_user_id=bob.pk)
    conversation_set_disposition(actor=agent_actor_for(bob), conversation_id=chat.pk, disposition_id=disposition.pk)
    assert conversation_end(actor=agent_actor_for(bob), conversation_id=chat.pk).left
    chat.refresh_from_db()
    assert (chat.status, chat.assignee_id, list(chat.participants.all())) == ("open", online.pk, [])


def test_inviting_a_queue_picks_one_of_its_free_members_or_says_none_is(tenant, chat, online):
    sales = QueueFactory(tenant=tenant, name="Sales desk")
    alice = agent_actor_for(online)
    with pytest.raises(ApplicationError) as error:
        conversation_invite(actor=alice, conversation_id=chat.pk, to_queue_id=sales.pk)
    assert error.value.message == "No one of Sales desk is free to join now."
    colleague(tenant, queue=sales, presence=Presence.OFFLINE, first_name="Olly")
    dana = colleague(tenant, queue=sales, first_name="Dana")
    assert conversation_invite(actor=alice, conversation_id=chat.pk, to_queue_id=sales.pk).user_id == dana.pk
    with pytest.raises(ApplicationError) as error:
        conversation_invite(actor=alice, conversation_id=chat.pk, to_user_id=dana.pk)
    assert error.value.code == "bad_target"


def test_a_missed_offer_stays_counted_after_the_chat_is_transferred_to_the_agent_who_missed_it(
    tenant, widget, queue, online, supervisor
):
    """Found on `make run`: Alice missed the offer, Bob took the chat and transferred it to her; today's "missed"
    went back to 0 because her offer's row was reused for the transfer. Each offer is its own row now."""
    from datetime import timedelta

    from django.utils import timezone

    from agents.supervision_state import supervision_snapshot
    from queueing.services import offers_expire_sweep

    bob = colleague(tenant, queue)
    AgentProfile.objects.filter(user__in=[online, bob]).update(max_chats=1)
    AgentProfile.objects.filter(user=bob).update(idle_since=timezone.now())  # Alice first: idle the longest
    conversation = start(widget, 1)
    assert list(Offer.objects.filter(conversation=conversation).values_list("agent_id", flat=True)) == [online.pk]
    Offer.objects.filter(conversation=conversation).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert offers_expire_sweep() == 1  # missed: Alice paused, the chat offered to Bob
    conversation_accept(actor=agent_actor_for(bob), conversation_id=conversation.pk)
    AgentProfile.objects.filter(user=online).update(presence=Presence.ONLINE, pause_reason=None)  # back online
    conversation_transfer(actor=agent_actor_for(bob), conversation_id=conversation.pk, to_user_id=online.pk)
    conversation_accept(actor=agent_actor_for(online), conversation_id=conversation.pk)

    rows = list(Offer.objects.filter(conversation=conversation).order_by("pk").values_list("agent_id", "status"))
    assert rows == [
        (online.pk, OfferStatus.MISSED),
        (bob.pk, OfferStatus.ACCEPTED),
        (online.pk, OfferStatus.ACCEPTED),
    ]
    today = supervision_snapshot(actor=agent_actor_for(supervisor))["today"]
    assert (today["offered"], today["missed"]) == (1, 1)


def test_a_chat_transferred_to_a_queue_is_offered_as_a_transfer_and_a_new_chat_is_not(
    tenant, widget, queue, online, published, django_capture_on_commit_callbacks
):
    """The card of an offer made after a transfer to a queue names who transferred the chat; a chat straight from
    its queue names no one."""
    bob = colleague(tenant, queue)
    AgentProfile.objects.filter(user=bob).update(presence=Presence.AWAY)  # Alice gets the first offer
    conversation = start(widget, 1)
    conversation_accept(actor=agent_actor_for(online), conversation_id=conversation.pk)
    AgentProfile.objects.filter(user=bob).update(presence=Presence.ONLINE)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_transfer(actor=agent_actor_for(online), conversation_id=conversation.pk, to_queue_id=queue.pk)
    offers = [(g, e["offer"]["transferred_by"]) for g, e in published if e["type"] == "offer.new"]
    assert offers == [(f"t{tenant.pk}.agent.{bob.pk}", user_display_name(online))]
    conversation_accept(actor=agent_actor_for(bob), conversation_id=conversation.pk)
    fresh = start(widget, 2)
    assert Offer.objects.get(conversation=fresh).transferred_by_id is None
