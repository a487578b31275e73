"""State changes of queueing: queues, their members and the widgets routed to them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from agents.models import AgentProfile, CannedTemplate, Presence
from agents.services import (
    active_disposition_list,
    agent_heartbeat,
    agent_socket_closed,
    agent_socket_opened,
    agent_sockets_sweep,
    presence_set,
    presence_sweep,
)
from chat import events
from chat.events import iso
from chat.models import Conversation, ConversationStatus, Widget
from chat.selectors import Actor, AgentActor, agent_open_conversation_list, contact_data, conversation_preview
from chat.services import (
    CloseResult,
    conversation_close,
    conversation_start,
    conversation_updated_publish,
    system_notice_post,
    widget_save,
)
from contactcenter.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from contactcenter.models import Membership, Role, user_display_name
from contactcenter.realtime import agent_group, publish_on_commit, tenant_agents_group
from contactcenter.services import validated_save
from queueing.models import Offer, OfferStatus, Queue, QueueMember, QueueRoute


@transaction.atomic
def queue_save(*, tenant: Any, instance: Queue | None = None, **fields: Any) -> Queue:
    return validated_save(instance or Queue(tenant=tenant), **fields)


def _tenant_users(queue: Queue, users: Iterable[User | int]) -> list[User]:
    ids = {u if isinstance(u, int) else u.pk for u in users}
    members = list(Membership.objects.for_tenant(queue.tenant).filter(user_id__in=ids).select_related("user"))
    if len(members) != len(ids):
        raise NotFound("agent")  # another tenant's user is the same as no user
    return [m.user for m in members]


@transaction.atomic
def queue_member_add(*, queue: Queue, user: User | int) -> QueueMember:
    (member_user,) = _tenant_users(queue, [user])
    member, _ = QueueMember.objects.get_or_create(tenant=queue.tenant, queue=queue, user=member_user)
    return member


@transaction.atomic
def queue_member_remove(*, queue: Queue, user: User | int) -> None:
    user_id = user if isinstance(user, int) else user.pk
    QueueMember.objects.for_tenant(queue.tenant).filter(queue=queue, user_id=user_id).delete()


@transaction.atomic
def queue_members_set(*, queue: Queue, users: Iterable[User | int]) -> None:
    wanted = _tenant_users(queue, users)
    QueueMember.objects.for_tenant(queue.tenant).filter(queue=queue).exclude(user__in=wanted).delete()
    QueueMember.objects.bulk_create(
        [QueueMember(tenant=queue.tenant, queue=queue, user=user) for user in wanted], ignore_conflicts=True
    )


@transaction.atomic
def queue_widgets_set(*, queue: Queue, widgets: Iterable[Widget | int]) -> None:
    """Routes these widgets to this queue (a widget routes to one queue: it moves here)."""
    ids = {w if isinstance(w, int) else w.pk for w in widgets}
    found = list(Widget.objects.for_tenant(queue.tenant).filter(pk__in=ids))
    if len(found) != len(ids):
        raise NotFound("widget")
    QueueRoute.objects.for_tenant(queue.tenant).filter(queue=queue).exclude(widget__in=found).delete()
    for widget in found:
        QueueRoute.objects.update_or_create(tenant=queue.tenant, widget=widget, defaults={"queue": queue})


@transaction.atomic
def widget_save_routed(*, tenant: Any, instance: Widget | None = None, **fields: Any) -> Widget:
    """Saves a widget; a new one is routed to the tenant's queue when there is exactly one.

    A widget routed nowhere tells every visitor "No one is available", so a new widget should not start
    that way when the choice is obvious. With no queue or several it stays unrouted (the settings pages warn).
    """
    widget = widget_save(tenant=tenant, instance=instance, **fields)
    if instance is None:
        queues = list(Queue.objects.for_tenant(tenant).order_by("pk")[:2])
        if len(queues) == 1:
            QueueRoute.objects.get_or_create(tenant=tenant, widget=widget, defaults={"queue": queues[0]})
    return widget


def queue_delete(*, queue: Queue) -> None:
    if queue.routes.exists():
        raise ApplicationError("queue_in_use", "Route this queue's widgets elsewhere before deleting it.", status=409)
    queue.delete()


@transaction.atomic
def queue_configure(
    *,
    tenant: Any,
    instance: Queue | None = None,
    members: Iterable[User | int] = (),
    widgets: Iterable[Widget | int] = (),
    **fields: Any,
) -> Queue:
    """Saves a queue with its member agents and routed widgets in one go (the settings page's form)."""
    queue = queue_save(tenant=tenant, instance=instance, **fields)
    queue_members_set(queue=queue, users=members)
    queue_widgets_set(queue=queue, widgets=widgets)
    return queue


# --- live chat routing: offers, accept/reject, the waiting list, agents' console sessions ---------------
# (docs/protocol.md) A waiting conversation is offered to every online member of its widget's queue who
# has room; the first accept wins through a conditional UPDATE, and every other offer is withdrawn.

WAITING_LIST_LIMIT = 200


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


def agent_queue_ids(*, actor: AgentActor) -> list[int]:
    return list(
        QueueMember.objects.filter(tenant_id=actor.tenant_id, user=actor.user).values_list("queue_id", flat=True)
    )


def _open_load(tenant_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        Conversation.objects.filter(tenant_id=tenant_id, assignee_id__in=list(user_ids), status=ConversationStatus.OPEN)
        .values("assignee_id")
        .annotate(n=Count("id"))
    )
    return {row["assignee_id"]: row["n"] for row in rows}


def waiting_item(conversation: Conversation, queue: Queue | None) -> dict[str, Any]:
    widget = conversation.widget if conversation.widget_id else None
    return {
        "conversation_id": conversation.pk,
        "queue": {"id": queue.pk, "name": queue.name} if queue is not None else None,
        "waiting_since": iso(conversation.created_at),
        "contact_name": conversation.contact.name,
        "widget": {"id": widget.pk, "name": widget.name} if widget is not None else None,
        "preview": conversation_preview(conversation),
        "started_offline": conversation.started_offline,
    }


def offer_data(offer: Offer, conversation: Conversation) -> dict[str, Any]:
    widget = conversation.widget if conversation.widget_id else None
    queue = offer.queue if offer.queue_id else None
    return {
        "offer_id": offer.pk,
        "conversation_id": conversation.pk,
        "queue": {"id": queue.pk, "name": queue.name} if queue is not None else None,
        "waiting_since": iso(conversation.created_at),
        "offered_at": iso(offer.created_at),
        "contact": contact_data(conversation.contact),
        "survey": list(conversation.survey or []),
        "widget": (
            {"id": widget.pk, "name": widget.name, "agent_external_url": widget.agent_external_url}
            if widget is not None
            else None
        ),
        "preview": conversation_preview(conversation),
        "started_offline": conversation.started_offline,
    }


@transaction.atomic
def conversation_offer(*, conversation: Conversation, only_user_ids: Iterable[int] | None = None) -> list[Offer]:
    """The one routing function: offers a waiting conversation to the online members of its widget's queue
    that have room and were not offered it before (or only to `only_user_ids` among them)."""
    if conversation.status != ConversationStatus.WAITING or conversation.assignee_id is not None:
        return []
    queue = widget_queue(conversation.widget if conversation.widget_id else None)
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
    for user_id, max_chats in candidates:
        if load.get(user_id, 0) >= max_chats:
            continue
        offer, created = Offer.objects.get_or_create(
            conversation=conversation, agent_id=user_id, defaults={"tenant_id": conversation.tenant_id, "queue": queue}
        )
        if created:
            offers.append(offer)
            publish_on_commit(
                group=agent_group(conversation.tenant_id, user_id),
                event=events.offer_new(offer_data(offer, conversation)),
            )
    return offers


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
    answers: Any = None,
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
    queue = widget_queue(widget)
    publish_on_commit(
        group=tenant_agents_group(conversation.tenant_id),
        event=events.waiting_added(waiting_item(conversation, queue), queue.pk if queue is not None else None),
    )
    conversation_offer(conversation=conversation)
    return ConversationRequest(conversation=conversation, offline=offline)


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
    queue = widget_queue(conversation.widget if conversation.widget_id else None)
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
            widget__route__queue__memberships__user=actor.user,
        )
        .exclude(offers__agent=actor.user)
        .select_related("widget", "contact")
        .order_by("created_at", "pk")[:room]
    )
    offers: list[Offer] = []
    for conversation in waiting:
        offers += conversation_offer(conversation=conversation, only_user_ids=[actor.user.pk])
    return offers


def _presence_followup(*, actor: AgentActor, presence: str, changed: bool) -> int:
    """What follows a presence change, whoever made it: colleagues hear of it, and online brings offers
    while any other presence withdraws the pending ones. Returns how many offers were withdrawn."""
    if changed:
        publish_on_commit(group=tenant_agents_group(actor.tenant_id), event=events.agent_presence(actor.user, presence))
    if presence == Presence.ONLINE:
        agent_offers_refresh(actor=actor)
        return 0
    pending = list(Offer.objects.filter(tenant_id=actor.tenant_id, agent=actor.user, status=OfferStatus.PENDING))
    _withdraw_offers(pending, reason_for={}, default="unavailable")
    return len(pending)


@transaction.atomic
def agent_presence_change(*, actor: AgentActor, presence: str) -> AgentProfile:
    """The agent's chosen presence: online brings offers, away/offline withdraws the pending ones."""
    profile, changed = presence_set(user=actor.user, presence=presence)
    _presence_followup(actor=actor, presence=presence, changed=changed)
    return profile


@dataclass(frozen=True)
class OfflineSweep:
    sockets_cleared: int
    user_ids: list[int]  # the agents taken offline
    offers_withdrawn: int


@transaction.atomic
def agents_offline_sweep() -> OfflineSweep:
    """The sweep's presence pass: forgets sockets of dead server processes, takes agents whose sockets are
    gone past the grace period offline, and follows up on each as on a manual `presence.set offline`."""
    sockets_cleared = agent_sockets_sweep()
    user_ids = presence_sweep()
    withdrawn = 0
    profiles = AgentProfile.objects.filter(user_id__in=user_ids).select_related("user").order_by("pk")
    for profile in profiles:
        # The role does not matter for going offline (only for picking up work), as in conversation_end.
        actor = AgentActor(tenant_id=profile.tenant_id, user=profile.user, role=Role.AGENT)
        withdrawn += _presence_followup(actor=actor, presence=Presence.OFFLINE, changed=True)
    return OfflineSweep(sockets_cleared=sockets_cleared, user_ids=user_ids, offers_withdrawn=withdrawn)


@transaction.atomic
def conversation_end(*, actor: Actor, conversation_id: int, disposition_id: Any = None) -> CloseResult:
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


def waiting_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    """Conversations the agent may pick up without an offer: waiting in their queues, or routed nowhere."""
    queryset = (
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(status=ConversationStatus.WAITING, assignee__isnull=True)
        .select_related("widget", "contact", "widget__route__queue")
    )
    if not actor.supervises:
        queryset = queryset.filter(
            Q(widget__route__queue__memberships__user=actor.user) | Q(widget__route__isnull=True)
        ).distinct()
    items = []
    for conversation in queryset.order_by("created_at", "pk")[:WAITING_LIST_LIMIT]:
        route = getattr(conversation.widget, "route", None) if conversation.widget_id else None
        items.append(waiting_item(conversation, route.queue if route is not None else None))
    return items


def pending_offer_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    offers = (
        Offer.objects.filter(
            tenant_id=actor.tenant_id,
            agent=actor.user,
            status=OfferStatus.PENDING,
            conversation__status=ConversationStatus.WAITING,
        )
        .select_related("conversation__widget", "conversation__contact", "queue")
        .order_by("created_at", "pk")
    )
    return [offer_data(offer, offer.conversation) for offer in offers]


@dataclass(frozen=True)
class ConsoleSession:
    """What an agent socket needs at connect: the hello frame and the queues that filter waiting events."""

    hello: dict[str, Any]
    queue_ids: list[int]


@transaction.atomic
def agent_console_open(*, actor: AgentActor) -> ConsoleSession:
    """Counts the socket, re-offers waiting work if the agent is online, and reads the console's state."""
    agent_socket_opened(user=actor.user)
    profile = AgentProfile.objects.get(tenant_id=actor.tenant_id, user=actor.user)
    _offers_refresh(actor, profile)  # already in this transaction: no savepoint, no second profile read
    conversations = agent_open_conversation_list(actor=actor)
    hello = {
        "type": "hello",
        "v": events.PROTOCOL_VERSION,
        "me": {
            "user_id": actor.user.pk,
            "name": user_display_name(actor.user),
            "role": actor.role,
            "presence": profile.presence,
            "max_chats": profile.max_chats,
            "open_chats": sum(1 for c in conversations if c["status"] == ConversationStatus.OPEN),
        },
        "conversations": conversations,
        "offers": pending_offer_list(actor=actor),
        "waiting": waiting_list(actor=actor),
        "dispositions": active_disposition_list(tenant_id=actor.tenant_id),
        "templates": list(CannedTemplate.objects.for_tenant(actor.tenant_id).values("id", "name", "body")),
        "limits": {"max_chars": settings.MESSAGE_MAX_CHARS},
    }
    return ConsoleSession(hello=hello, queue_ids=agent_queue_ids(actor=actor))


def agent_console_ping(*, actor: AgentActor) -> list[int]:
    """The heartbeat; returns the agent's queues afresh (membership may have changed since connect)."""
    agent_heartbeat(user=actor.user)
    return agent_queue_ids(actor=actor)


def agent_console_close(*, actor: AgentActor) -> None:
    agent_socket_closed(user=actor.user)
