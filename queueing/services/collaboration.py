"""Agents working a chat together: transfer it to a colleague or a queue, invite a colleague (or one from a
queue) into it. Leaving a chat a colleague goes on with is chat's `conversation_close` (via conversation_end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from agents.models import AgentProfile, Presence
from agents.services.presence import agent_idle_from_now
from chat import events
from chat.models import Conversation, ConversationStatus, Message
from chat.selectors import AgentActor, conversation_get_for, conversation_preview
from chat.services import conversation_updated_publish, system_notice_post
from contactcenter.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from contactcenter.models import Role, user_display_name
from contactcenter.realtime import agent_group, publish_on_commit, tenant_agents_group
from contactcenter.services.webhooks_out import (
    CONVERSATION_TRANSFERRED,
    conversation_transferred_data,
    webhook_event_record,
)
from queueing.events import waiting_item
from queueing.models import ConversationRoute, Offer, OfferStatus, Queue, QueueMember
from queueing.services.line import queue_line_joined, queue_line_moved
from queueing.services.routing import (
    _load,
    _ranked,
    _withdraw_offers,
    agent_offers_refresh,
    conversation_offer,
    conversations_lock,
    offer_make,
)


@dataclass(frozen=True)
class Colleague:
    """An agent as the Transfer and Invite menus show them: whether they can take the chat now, and why not."""

    user_id: int
    name: str
    presence: str
    chats: int
    max_chats: int
    reason: str | None  # None: available

    @property
    def available(self) -> bool:
        return self.reason is None


def _unavailable_reason(profile: AgentProfile, load: int) -> str | None:
    name = user_display_name(profile.user)
    if profile.presence != Presence.ONLINE:
        if profile.presence == Presence.PAUSED and profile.pause_reason is not None:
            return f"{name} is paused ({profile.pause_reason.name})."
        return f"{name} is {Presence(profile.presence).label.lower()}."
    if load >= profile.max_chats:
        return f"{name} already has {load} chat{'' if load == 1 else 's'}, their limit."
    return None


def colleagues_for(*, actor: AgentActor, conversation: Conversation) -> list[Colleague]:
    """The tenant's other active agents, not already in the conversation, with their availability; available
    first, then by name."""
    taken = {conversation.assignee_id, actor.user.pk, *conversation.participants.values_list("pk", flat=True)}
    profiles = list(
        AgentProfile.objects.for_tenant(actor.tenant_id)
        .filter(user__is_active=True)
        .exclude(user_id__in=[pk for pk in taken if pk is not None])
        .select_related("user", "pause_reason")
    )
    load = _load(actor.tenant_id, [p.user_id for p in profiles])
    colleagues = [
        Colleague(
            user_id=p.user_id,
            name=user_display_name(p.user),
            presence=p.presence,
            chats=load.get(p.user_id, 0),
            max_chats=p.max_chats,
            reason=_unavailable_reason(p, load.get(p.user_id, 0)),
        )
        for p in profiles
    ]
    return sorted(colleagues, key=lambda c: (not c.available, c.name.lower()))


def _writable_open(actor: AgentActor, conversation_id: int) -> Conversation:
    """The open conversation the actor works on, its row locked (before any offer, as routing locks)."""
    conversations_lock(actor.tenant_id, [conversation_id])
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    if conversation.status != ConversationStatus.OPEN:
        raise Conflict("not_open", "Only an open chat can be handed on.")
    return conversation


def _available_agent(actor: AgentActor, user_id: int, *, locked: bool) -> AgentProfile:
    """The colleague's profile, checked free to take a chat now (online, under their cap); refused with the
    reason otherwise. `locked`: their profile row is locked, as routing locks it to make an offer."""
    profiles = AgentProfile.objects.for_tenant(actor.tenant_id).filter(user_id=user_id, user__is_active=True)
    if locked:
        profiles = profiles.select_for_update(of=("self",))
    profile = profiles.select_related("user", "pause_reason").first()
    if profile is None:
        raise NotFound("agent")  # another tenant's agent is the same as none
    reason = _unavailable_reason(profile, _load(actor.tenant_id, [user_id]).get(user_id, 0))
    if reason is not None:
        raise ApplicationError("agent_unavailable", reason, status=409)
    return profile


def _queue(actor: AgentActor, queue_id: int) -> Queue:
    queue = Queue.objects.for_tenant(actor.tenant_id).filter(pk=queue_id).first()
    if queue is None:
        raise NotFound("queue")
    return queue


def _one_target(to_user_id: int | None, to_queue_id: int | None) -> None:
    if (to_user_id is None) == (to_queue_id is None):
        raise ApplicationError("bad_target", "Choose one colleague or one queue.")


@transaction.atomic
def conversation_transfer(
    *, actor: AgentActor, conversation_id: int, to_user_id: int | None = None, to_queue_id: int | None = None
) -> Conversation:
    """The assignee hands the chat on: it leaves them at once and waits for its receiver, with its history.

    To a colleague: they must be free to take it now (else refused with the reason) and get a normal offer
    (rejected or missed, it goes on to the queue's next agent). To a queue: it waits there, keeping its place
    (the line is in order of the chat's start), offered by the queue's method. Never routed back to the agent
    who transferred it while it waits. The visitor is told.
    """
    _one_target(to_user_id, to_queue_id)
    conversation = _writable_open(actor, conversation_id)
    if conversation.assignee_id != actor.user.pk:
        raise PermissionDenied("Only the agent who has this chat can transfer it.")
    if to_user_id == actor.user.pk:
        raise ApplicationError("bad_target", "This chat is already yours.")
    route = ConversationRoute.objects.filter(tenant_id=actor.tenant_id, conversation=conversation).first()
    if to_user_id is not None:
        receiver = _available_agent(actor, to_user_id, locked=True)
        queue = route.queue if route is not None else None
        where = events.agent_public_name(receiver.user)
    else:
        assert to_queue_id is not None
        target = _queue(actor, to_queue_id)
        queue, where = target, f"the {target.name} team"
    previous_queue_id = route.queue_id if route is not None else None
    if route is None:
        route = ConversationRoute(tenant_id=actor.tenant_id, conversation=conversation)
    if to_queue_id is not None:
        route.queue, route.queue_name = target, target.name
    route.transferred_from = actor.user
    route.unserved_at = None
    route.save()

    conversation.status, conversation.assignee = ConversationStatus.WAITING, None
    conversation.save(update_fields=["status", "assignee"])
    # Participants stay: an invited colleague goes on hearing the chat, and takes part once it is answered.
    name = events.agent_public_name(actor.user)
    system_notice_post(
        conversation=conversation,
        event="conversation.transferred",
        body=f"{name} transferred the chat to {where}.",
        event_data={"agent_name": name, "to_agent": to_user_id, "to_queue": to_queue_id},
    )
    conversation_updated_publish(conversation, agents_only=False)
    webhook_event_record(
        tenant_id=actor.tenant_id,
        type=CONVERSATION_TRANSFERRED,
        data=conversation_transferred_data(
            conversation, from_agent_id=actor.user.pk, to_agent_id=to_user_id, to_queue_id=to_queue_id
        ),
    )
    publish_on_commit(
        group=agent_group(actor.tenant_id, actor.user.pk),
        event=events.conversation_unassigned(conversation.pk, reason="transferred"),
    )
    publish_on_commit(
        group=tenant_agents_group(actor.tenant_id),
        event=events.waiting_added(
            waiting_item(conversation, queue, preview=conversation_preview(conversation)),
            queue.pk if queue is not None else None,
        ),
    )
    if to_user_id is not None:
        offer_make(conversation=conversation, agent=receiver, queue=queue, transferred_by_id=actor.user.pk)
    else:
        if previous_queue_id is not None and previous_queue_id != target.pk:
            queue_line_moved(tenant_id=actor.tenant_id, queue_id=previous_queue_id)
        queue_line_joined(tenant_id=actor.tenant_id, queue_id=target.pk, conversation_id=conversation.pk)
        conversation_offer(conversation=conversation)
    agent_idle_from_now(tenant_id=actor.tenant_id, user_id=actor.user.pk)
    agent_offers_refresh(actor=actor)
    return conversation


@transaction.atomic
def conversation_invite(
    *, actor: AgentActor, conversation_id: int, to_user_id: int | None = None, to_queue_id: int | None = None
) -> AgentProfile:
    """Brings a colleague into the chat at once: both chat with the visitor, who sees who joined. To a queue:
    the queue's method picks one of its free members. The invited colleague must be free (online, under their
    cap), else refused with the reason. Returns the invited agent's profile."""
    _one_target(to_user_id, to_queue_id)
    conversation = _writable_open(actor, conversation_id)
    inside = {conversation.assignee_id, *conversation.participants.values_list("pk", flat=True)}
    if to_user_id is not None:
        if to_user_id in inside:
            raise ApplicationError("bad_target", "They are already in this chat.")
        invited = _available_agent(actor, to_user_id, locked=True)
    else:
        assert to_queue_id is not None
        queue = _queue(actor, to_queue_id)
        members = (
            AgentProfile.objects.for_tenant(actor.tenant_id)
            .filter(presence=Presence.ONLINE, user__is_active=True, user__queue_memberships__queue=queue)
            .exclude(user_id__in=[pk for pk in inside if pk is not None])
        )
        candidates = list(members.values_list("pk", "user_id", "max_chats", "idle_since", "last_offered_at"))
        ranked = _ranked(queue, candidates, _load(actor.tenant_id, [row[1] for row in candidates]))
        if not ranked:
            raise ApplicationError("agent_unavailable", f"No one of {queue.name} is free to join now.", status=409)
        user_id = AgentProfile.objects.for_tenant(actor.tenant_id).filter(pk=ranked[0]).values_list("user_id")[0][0]
        invited = _available_agent(actor, user_id, locked=True)
    conversation.participants.add(invited.user)
    # An offer the invited colleague held for this chat (a transfer to them meanwhile) is settled by joining.
    _withdraw_offers(
        Offer.objects.filter(conversation=conversation, agent_id=invited.user_id, status=OfferStatus.PENDING),
        reason_for={},
        default="accepted",
    )
    joined = events.agent_public_name(invited.user)
    system_notice_post(
        conversation=conversation,
        event="agent.joined",
        body=f"{joined} joined the chat.",
        event_data={"agent_name": joined, "invited_by": events.agent_public_name(actor.user)},
    )
    conversation_updated_publish(conversation, agents_only=False)
    publish_on_commit(
        group=agent_group(actor.tenant_id, invited.user_id), event=events.conversation_assigned(conversation.pk)
    )
    invited.last_offered_at = timezone.now()
    invited.save(update_fields=["last_offered_at"])
    return invited


def queue_choices(*, actor: AgentActor) -> list[tuple[Queue, int]]:
    """The tenant's queues with how many of their members are online (the menus' queue half)."""
    queues = list(Queue.objects.for_tenant(actor.tenant_id).order_by("name"))
    online = dict.fromkeys((q.pk for q in queues), 0)
    rows = QueueMember.objects.filter(
        tenant_id=actor.tenant_id,
        user__is_active=True,
        user__agent_profile__presence=Presence.ONLINE,
    ).values_list("queue_id", flat=True)
    for queue_id in rows:
        online[queue_id] = online.get(queue_id, 0) + 1
    return [(q, online[q.pk]) for q in queues]


ASSIST_AGAIN_AFTER = timedelta(seconds=30)


@transaction.atomic
def assistance_request(*, actor: AgentActor, conversation_id: int) -> int:
    """An agent in an open chat asks for help: every supervisor and admin on duty (their console open and not
    offline) gets `assistance.requested` with a way into the chat, where they can read it live, whisper and join;
    the agents in the chat see a private line that help was asked for. Returns how many were alerted."""
    conversation = _writable_open(actor, conversation_id)
    recent = Message.objects.filter(
        conversation=conversation, event="assistance.requested", created_at__gte=timezone.now() - ASSIST_AGAIN_AFTER
    )
    if recent.exists():
        raise ApplicationError(
            "rate_limited", "Assistance was asked for a moment ago: a supervisor is alerted.", status=429
        )
    on_duty = list(
        AgentProfile.objects.for_tenant(actor.tenant_id)
        .filter(
            user__is_active=True,
            user__membership__tenant_id=actor.tenant_id,
            user__membership__role__in=[Role.SUPERVISOR, Role.ADMIN],
        )
        .exclude(presence=Presence.OFFLINE)
        .exclude(user_id=actor.user.pk)
        .values_list("user_id", flat=True)
    )
    if not on_duty:
        raise ApplicationError("no_supervisor", "No supervisor is on duty right now.", status=409)
    name = user_display_name(actor.user)
    system_notice_post(
        conversation=conversation,
        event="assistance.requested",
        body=f"{name} asked a supervisor for assistance.",
        event_data={"agent_name": name},
        private=True,
    )
    route = ConversationRoute.objects.filter(tenant_id=actor.tenant_id, conversation=conversation).first()
    alert = {
        "type": "assistance.requested",
        "conversation_id": conversation.pk,
        "agent_name": name,
        "contact_name": conversation.contact.name,
        "queue": route.queue_name if route is not None else None,
    }
    for user_id in on_duty:
        publish_on_commit(group=agent_group(actor.tenant_id, user_id), event=alert)
    return len(on_duty)


@transaction.atomic
def conversation_join(*, actor: AgentActor, conversation_id: int) -> Conversation:
    """A supervisor or admin following a colleague's chat joins it: they take part (write access) and the visitor
    sees who joined."""
    if not actor.supervises:
        raise PermissionDenied("Only supervisors and admins join a colleague's chat.")
    conversations_lock(actor.tenant_id, [conversation_id])
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id)
    if conversation.status != ConversationStatus.OPEN:
        raise Conflict("not_open", "Only an open chat can be joined.")
    if conversation.assignee_id == actor.user.pk or conversation.participants.filter(pk=actor.user.pk).exists():
        raise ApplicationError("bad_target", "You are in this chat already.")
    conversation.participants.add(actor.user)
    joined = events.agent_public_name(actor.user)
    system_notice_post(
        conversation=conversation,
        event="agent.joined",
        body=f"{joined} joined the chat.",
        event_data={"agent_name": joined, "supervisor": True},
    )
    conversation_updated_publish(conversation, agents_only=False)
    publish_on_commit(
        group=agent_group(actor.tenant_id, actor.user.pk), event=events.conversation_assigned(conversation.pk)
    )
    return conversation
