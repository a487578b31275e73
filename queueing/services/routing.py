"""Live chat routing (docs/protocol.md): a waiting conversation is offered to every online member of its
queue who has room; the first accept wins through a conditional UPDATE, and every other offer is withdrawn."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, prefetch_related_objects
from django.utils import timezone

from agents.models import AgentProfile, Presence
from chat import events
from chat.models import Attachment, Conversation, ConversationStatus, Message, Widget
from chat.selectors import Actor, AgentActor, conversation_preview
from chat.services import CloseResult, conversation_updated_publish, message_receive, system_notice_post
from chat.services.starting import conversation_open_on_channel, conversation_start
from chat.services.state import conversation_close
from contactcenter.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from contactcenter.models import Contact, Role
from contactcenter.realtime import agent_group, publish_on_commit, tenant_agents_group
from queueing.events import offer_data, waiting_item
from queueing.models import ConversationRoute, Offer, OfferStatus, Queue, QueueMember, QueueRoute
from queueing.selectors import conversation_queue


def widget_queue(widget: Widget | None) -> Queue | None:
    if widget is None:
        return None
    route = QueueRoute.objects.filter(tenant_id=widget.tenant_id, widget=widget).select_related("queue").first()
    return route.queue if route is not None else None


def widget_available(*, widget: Widget) -> bool:
    """Whether a member of the widget's queue is online (the widget shows the chat form, not the offline one)."""
    queue = widget_queue(widget)
    if queue is None:
        return False
    return QueueMember.objects.filter(
        tenant_id=widget.tenant_id,
        queue=queue,
        user__is_active=True,
        user__agent_profile__presence=Presence.ONLINE,
    ).exists()


def _open_load(tenant_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        Conversation.objects.filter(tenant_id=tenant_id, assignee_id__in=list(user_ids), status=ConversationStatus.OPEN)
        .values("assignee_id")
        .annotate(n=Count("id"))
    )
    return {row["assignee_id"]: row["n"] for row in rows}


@transaction.atomic
def conversation_offer(*, conversation: Conversation, only_user_ids: Iterable[int] | None = None) -> list[Offer]:
    """The one routing function: offers a waiting conversation to the online members of the queue it was routed
    to that have room and were not offered it before (or only to `only_user_ids` among them)."""
    if conversation.status != ConversationStatus.WAITING or conversation.assignee_id is not None:
        return []
    queue = conversation_queue(conversation=conversation)
    if queue is None:
        return []  # unrouted: stays in every agent's waiting list
    members = QueueMember.objects.filter(
        tenant_id=conversation.tenant_id,
        queue=queue,
        user__is_active=True,
        user__agent_profile__presence=Presence.ONLINE,
    ).exclude(user__chat_offers__conversation=conversation)
    if only_user_ids is not None:
        members = members.filter(user_id__in=list(only_user_ids))
    candidates = list(members.values_list("user_id", "user__agent_profile__max_chats"))
    load = _open_load(conversation.tenant_id, [user_id for user_id, _ in candidates])
    offers: list[Offer] = []
    preview: str | None = None  # read once, for the first offer made
    for user_id, max_chats in candidates:
        if load.get(user_id, 0) >= max_chats:
            continue
        offer, created = Offer.objects.get_or_create(
            conversation=conversation, agent_id=user_id, defaults={"tenant_id": conversation.tenant_id, "queue": queue}
        )
        if created:
            offers.append(offer)
            if preview is None:  # what every offer card shows of the conversation, read once
                preview = conversation_preview(conversation)
                prefetch_related_objects([conversation], "contact__identities")
            publish_on_commit(
                group=agent_group(conversation.tenant_id, user_id),
                event=events.offer_new(offer_data(offer, conversation, preview=preview)),
            )
    return offers


@transaction.atomic
def conversation_route(*, conversation: Conversation, queue: Queue | None) -> list[Offer]:
    """Routes a just-started conversation: writes the queue it goes to (the one place its queue comes from
    from now on; None: routed nowhere, every agent may pick it up), puts it on the waiting list and offers it.

    The second half of every start: conversation_request (web) calls it with the widget's queue; a channel's
    inbound start calls it with that channel's queue.
    """
    if queue is not None:
        ConversationRoute.objects.create(
            tenant_id=conversation.tenant_id, conversation=conversation, queue=queue, queue_name=queue.name
        )
    publish_on_commit(
        group=tenant_agents_group(conversation.tenant_id),
        event=events.waiting_added(
            waiting_item(conversation, queue, preview=conversation_preview(conversation)),
            queue.pk if queue is not None else None,
        ),
    )
    return conversation_offer(conversation=conversation)


@dataclass(frozen=True)
class ConversationRequest:
    conversation: Conversation
    offline: bool
    # False for a retried start (same client_id): the conversation of the first try, routed back then.
    created: bool = True


@transaction.atomic
def conversation_request(
    *,
    widget: Widget,
    visitor_id: str | None,
    answers: Mapping[str, str] | None = None,
    message: str = "",
    client_id: str | None = None,
    client_ip: str | None = None,
) -> ConversationRequest:
    """A visitor's new conversation: offered to the queue's online agents, or an offline message when none is.

    `visitor_id` None: a visitor without a token (chat.services.conversation_start makes them an id).
    `client_ip`: the caller's address, for the widget session rate limits (see conversation_start).
    """
    offline = not widget_available(widget=widget)
    started = conversation_start(
        widget=widget,
        visitor_id=visitor_id,
        answers=answers,
        message=message,
        client_id=client_id,
        offline=offline,
        client_ip=client_ip,
    )
    conversation = started.conversation
    if not started.created:
        return ConversationRequest(conversation=conversation, offline=conversation.started_offline, created=False)
    conversation_route(conversation=conversation, queue=widget_queue(widget))
    return ConversationRequest(conversation=conversation, offline=offline)


@transaction.atomic
def conversation_request_on_channel(
    *,
    contact: Contact,
    channel: str,
    queue: Queue | None,
    body: str,
    client_id: str,
    attach: Callable[[Conversation], Sequence[Attachment]] | None = None,
) -> tuple[Conversation, Message]:
    """A customer's new conversation on a provider's channel (their first SMS, WhatsApp message or email):
    opened, its first message stored with the files `attach` stores on it, then routed to the channel's queue
    and offered like a web chat."""
    conversation = conversation_open_on_channel(contact=contact, channel=channel)
    attachments = attach(conversation) if attach is not None else ()
    message = message_receive(conversation=conversation, body=body, client_id=client_id, attachments=attachments)
    conversation_route(conversation=conversation, queue=queue)
    return conversation, message


def _withdraw_offers(offers: Iterable[Offer], *, reason_for: dict[int, str], default: str) -> None:
    offers = list(offers)
    Offer.objects.filter(pk__in=[offer.pk for offer in offers], status=OfferStatus.PENDING).update(
        status=OfferStatus.WITHDRAWN, decided_at=timezone.now()
    )
    for offer in offers:
        publish_on_commit(
            group=agent_group(offer.tenant_id, offer.agent_id),
            event=events.offer_withdrawn(
                conversation_id=offer.conversation_id,
                offer_id=offer.pk,
                reason=reason_for.get(offer.agent_id, default),
            ),
        )


@transaction.atomic
def conversation_accept(*, actor: AgentActor, conversation_id: int) -> Conversation:
    """Takes a waiting conversation; exactly one of several agents accepting at once wins."""
    # Locking the agent's own profile first serialises their accepts (two tabs): the cap holds.
    profile = AgentProfile.objects.select_for_update().filter(tenant_id=actor.tenant_id, user=actor.user).first()
    if profile is None:
        raise PermissionDenied("You have no agent profile.")
    conversation = (
        Conversation.objects.for_tenant(actor.tenant_id).select_related("widget").filter(pk=conversation_id).first()
    )
    if conversation is None:
        raise NotFound("conversation")
    has_offer = Offer.objects.filter(conversation=conversation, agent=actor.user).exists()
    queue = conversation_queue(conversation=conversation)
    member = (
        queue is None or QueueMember.objects.filter(tenant_id=actor.tenant_id, queue=queue, user=actor.user).exists()
    )
    if not (member or has_offer or actor.supervises):
        raise ApplicationError("not_in_queue", "This conversation waits in a queue you are not a member of.")
    if conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("not_waiting", "This conversation is closed.", status=409)
    if conversation.status != ConversationStatus.WAITING or conversation.assignee_id is not None:
        raise Conflict("already_taken", "Another agent took this conversation.")
    if _open_load(actor.tenant_id, [actor.user.pk]).get(actor.user.pk, 0) >= profile.max_chats:
        raise Conflict("at_capacity", f"You already have {profile.max_chats} open conversations.")
    now = timezone.now()
    # The race is decided here, by the database: the second UPDATE finds the row no longer waiting.
    won = Conversation.objects.filter(
        pk=conversation.pk, tenant_id=actor.tenant_id, status=ConversationStatus.WAITING, assignee__isnull=True
    ).update(status=ConversationStatus.OPEN, assignee=actor.user, answered_at=now)
    if not won:
        raise Conflict("already_taken", "Another agent took this conversation.")
    conversation.refresh_from_db()
    own = Offer.objects.filter(conversation=conversation, agent=actor.user, status=OfferStatus.PENDING).first()
    if own is not None:
        Offer.objects.filter(pk=own.pk).update(status=OfferStatus.ACCEPTED, decided_at=now)
        publish_on_commit(
            group=agent_group(actor.tenant_id, actor.user.pk),
            event=events.offer_withdrawn(conversation_id=conversation.pk, offer_id=own.pk, reason="accepted"),
        )
    _withdraw_offers(
        Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING), reason_for={}, default="taken"
    )
    name = events.agent_public_name(actor.user)
    system_notice_post(
        conversation=conversation,
        event="agent.joined",
        body=f"{name} joined the chat.",
        event_data={"agent_name": name},
    )
    conversation_updated_publish(conversation, agents_only=False)
    publish_on_commit(
        group=agent_group(actor.tenant_id, actor.user.pk), event=events.conversation_assigned(conversation.pk)
    )
    publish_on_commit(group=tenant_agents_group(actor.tenant_id), event=events.waiting_removed(conversation.pk))
    return conversation


@transaction.atomic
def offer_reject(*, actor: AgentActor, conversation_id: int) -> Offer:
    offer = (
        Offer.objects.select_for_update()
        .filter(tenant_id=actor.tenant_id, conversation_id=conversation_id, agent=actor.user)
        .first()
    )
    if offer is None:
        raise NotFound("offer")
    if offer.status == OfferStatus.PENDING:
        offer.status = OfferStatus.REJECTED
        offer.decided_at = timezone.now()
        offer.save(update_fields=["status", "decided_at"])
        publish_on_commit(
            group=agent_group(actor.tenant_id, actor.user.pk),
            event=events.offer_withdrawn(conversation_id=conversation_id, offer_id=offer.pk, reason="rejected"),
        )
    return offer


@transaction.atomic
def agent_offers_refresh(*, actor: AgentActor) -> list[Offer]:
    """Offers an agent who has room the oldest waiting conversations of their queues not yet offered to them."""
    return _offers_refresh(actor, AgentProfile.objects.filter(tenant_id=actor.tenant_id, user=actor.user).first())


def _offers_refresh(actor: AgentActor, profile: AgentProfile | None) -> list[Offer]:
    """agent_offers_refresh with the agent's profile already read, inside the caller's transaction."""
    if profile is None or profile.presence != Presence.ONLINE:
        return []
    room = profile.max_chats - _open_load(actor.tenant_id, [actor.user.pk]).get(actor.user.pk, 0)
    if room <= 0:
        return []
    waiting = (
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(
            status=ConversationStatus.WAITING,
            assignee__isnull=True,
            queue_route__queue__memberships__user=actor.user,
        )
        .exclude(offers__agent=actor.user)
        .select_related("widget", "contact")
        .order_by("created_at", "pk")[:room]
    )
    offers: list[Offer] = []
    for conversation in waiting:
        offers += conversation_offer(conversation=conversation, only_user_ids=[actor.user.pk])
    return offers


@transaction.atomic
def conversation_end(*, actor: Actor, conversation_id: int, disposition_id: int | None = None) -> CloseResult:
    """Closes a conversation (visitor's "end chat" or an agent's close) and releases what routing held for it."""
    result = conversation_close(actor=actor, conversation_id=conversation_id, disposition_id=disposition_id)
    if not result.closed_now:
        return result
    conversation = result.conversation
    pending = Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING)
    _withdraw_offers(list(pending), reason_for={}, default="closed")
    if result.previous_status == ConversationStatus.WAITING:
        publish_on_commit(
            group=tenant_agents_group(conversation.tenant_id), event=events.waiting_removed(conversation.pk)
        )
    if conversation.assignee_id is not None:
        assignee = User.objects.get(pk=conversation.assignee_id)
        # The assignee has room again: the oldest waiting conversation of their queues comes to them.
        agent_offers_refresh(actor=AgentActor(tenant_id=conversation.tenant_id, user=assignee, role=Role.AGENT))
    return result


def waiting_preview_publish(*, message: Message) -> None:
    """Announces a waiting conversation's first visitor words (chat.signals.waiting_message_stored) to the
    agents of its queue, for the offer cards and waiting items made before the visitor wrote."""
    conversation = Conversation.objects.select_related("widget").get(pk=message.conversation_id)
    queue = conversation_queue(conversation=conversation)
    publish_on_commit(
        group=tenant_agents_group(message.tenant_id),
        event={
            "type": "waiting.preview",
            "conversation_id": message.conversation_id,
            "preview": conversation_preview(conversation),
            "queue_id": queue.pk if queue is not None else None,
        },
    )
