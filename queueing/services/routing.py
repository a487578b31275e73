"""The routing engine (docs/architecture.md, "Routing"): a waiting conversation is offered to ONE eligible agent at
a time (online, a member of its queue, under their cap counting the offers they hold, not offered it before while
anyone else can take it: after ROUTING_REOFFER_SECONDS an agent who rejected or missed it may have it again when
no one else can), chosen by the queue's method: longest idle, round robin or least busy. The offer expires after
the queue's answer time limit: the agent is paused ("Missed offer") and the next agent gets it; a rejection sends
it to the next agent at once. An agent's profile row is locked (skipping a locked one) while an offer is made to
them, as accept locks it, so two processes never give one agent more than their room. Accept is won by a
conditional UPDATE. Every deadline is a stored timestamp the one sweep acts on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Value, prefetch_related_objects
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.models import AgentProfile, Presence
from agents.services.presence import agent_idle_from_now
from chat import events
from chat.models import Attachment, Channel, Conversation, ConversationStatus, Message, Widget
from chat.selectors import Actor, AgentActor, VisitorActor, conversation_preview, conversation_previews
from chat.services import (
    CloseResult,
    Notice,
    conversation_updated_publish,
    message_receive,
    system_notices_post,
    visitor_lease_renew,
    widget_open_at,
)
from chat.services.starting import conversation_open_on_channel, conversation_start
from chat.services.state import conversation_close
from contactcenter.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from contactcenter.models import Contact, Role
from contactcenter.realtime import agent_group, publish_on_commit, tenant_agents_group
from contactcenter.services.webhooks_out import CONVERSATION_ASSIGNED, conversation_assigned_data, webhook_event_record
from queueing.events import offer_data, waiting_item
from queueing.models import (
    ConversationRoute,
    Offer,
    OfferStatus,
    Queue,
    QueueMember,
    QueueRoute,
    RoutingMethod,
)
from queueing.selectors import conversation_queue, conversation_route_of, queue_places_total, queue_waiting_count
from queueing.services.line import queue_line_joined, queue_line_moved


def widget_queue(widget: Widget | None) -> Queue | None:
    if widget is None:
        return None
    route = QueueRoute.objects.filter(tenant_id=widget.tenant_id, widget=widget).select_related("queue").first()
    return route.queue if route is not None else None


@dataclass(frozen=True)
class Admission:
    """Whether a visitor may start a live chat now (else the widget offers the offline form), and why not:
    "no_queue", "nobody_online", "all_busy" (everyone busy and this widget queues no one), "queue_full"."""

    available: bool
    reason: str | None = None


def widget_admission(*, widget: Widget, lock: bool = False) -> Admission:
    """A live chat is offered when a member of the widget's queue is online with room (an offer at once) or,
    with the widget's queueing on, while the queue has a place left: `capacity` places, or `capacity` per
    online member. `lock`: the queue row is locked for the caller's transaction, so that two visitors
    starting at once never take the same last place."""
    queue = widget_queue(widget)
    if queue is None:
        return Admission(False, "no_queue")
    online = list(
        AgentProfile.objects.filter(
            tenant_id=widget.tenant_id,
            presence=Presence.ONLINE,
            user__is_active=True,
            user__queue_memberships__queue=queue,
        ).values_list("user_id", "max_chats")
    )
    if not online:
        return Admission(False, "nobody_online")
    load = _load(widget.tenant_id, [user_id for user_id, _ in online])
    if any(load.get(user_id, 0) < max_chats for user_id, max_chats in online):
        return Admission(True)
    if not widget.queueing_enabled:
        return Admission(False, "all_busy")
    if lock:
        Queue.objects.select_for_update().filter(pk=queue.pk, tenant_id=widget.tenant_id).first()
    places = queue_places_total(queue=queue, online_members=len(online))
    if queue_waiting_count(tenant_id=widget.tenant_id, queue_id=queue.pk) >= places:
        return Admission(False, "queue_full")
    return Admission(True)


def duration_text(seconds: int) -> str:
    """3 min 12 s, 45 s, 1 h 5 min."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _open_load(tenant_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        Conversation.objects.filter(tenant_id=tenant_id, assignee_id__in=list(user_ids), status=ConversationStatus.OPEN)
        .values("assignee_id")
        .annotate(n=Count("id"))
    )
    return {row["assignee_id"]: row["n"] for row in rows}


def _load(tenant_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    """Each agent's open conversations plus the offers they hold: what counts against their cap."""
    user_ids = list(user_ids)
    load = _open_load(tenant_id, user_ids)
    offers = (
        Offer.objects.filter(tenant_id=tenant_id, agent_id__in=user_ids, status=OfferStatus.PENDING)
        .values("agent_id")
        .annotate(n=Count("id"))
    )
    for row in offers:
        load[row["agent_id"]] = load.get(row["agent_id"], 0) + row["n"]
    return load


_NEVER = datetime.min.replace(tzinfo=UTC)


def _ranked(
    queue: Queue, candidates: list[tuple[int, int, int, datetime | None, datetime | None]], load: dict[int, int]
) -> list[int]:
    """The candidates' profile ids in the order the queue's method tries them: (profile id, user id, max chats,
    idle since, last offered at) each."""

    def idle(row: tuple[int, int, int, datetime | None, datetime | None]) -> tuple[datetime, int]:
        # Idle since they came online, took or ended a chat, or were last offered one (an offer is work).
        return (max(row[3] or _NEVER, row[4] or _NEVER), row[0])

    if queue.routing_method == RoutingMethod.ROUND_ROBIN:
        ordered = sorted(candidates, key=lambda row: (row[4] or _NEVER, row[0]))
    elif queue.routing_method == RoutingMethod.LEAST_BUSY:
        ordered = sorted(candidates, key=lambda row: (load.get(row[1], 0), *idle(row)))
    else:
        ordered = sorted(candidates, key=idle)
    return [row[0] for row in ordered if load.get(row[1], 0) < row[2]]


def _agent_locked(tenant_id: int, profile_ids: list[int]) -> AgentProfile | None:
    """The first of these agents (in this order) whose profile no one else holds and who still has room, locked
    for this transaction; None when every one is taken or full."""
    for profile_id in profile_ids:
        profile = (
            AgentProfile.objects.select_for_update(skip_locked=True)
            .filter(pk=profile_id, tenant_id=tenant_id, presence=Presence.ONLINE)
            .first()
        )
        if profile is not None and _load(tenant_id, [profile.user_id]).get(profile.user_id, 0) < profile.max_chats:
            return profile
    return None


@transaction.atomic
def conversation_offer(*, conversation: Conversation, only_user_ids: Iterable[int] | None = None) -> list[Offer]:
    """The routing engine's one step: offers a waiting conversation that no agent holds an offer for to the
    one eligible agent its queue's method picks (or to one of `only_user_ids`); [] when none can take it now
    (it waits in the queue: the sweep, an agent coming online or ending a chat, tries again)."""
    if conversation.status != ConversationStatus.WAITING or conversation.assignee_id is not None:
        return []
    route = conversation_route_of(conversation=conversation)
    queue = route.queue if route is not None else None
    if route is None or queue is None:
        return []  # unrouted: stays in every agent's waiting list
    # The conversation's row first (as accept, reject, expiry and close lock it before its offers): an accept
    # committing meanwhile is seen, and no offer is made for a chat just taken.
    waiting = Conversation.objects.select_for_update().filter(
        pk=conversation.pk, tenant_id=conversation.tenant_id, status=ConversationStatus.WAITING, assignee__isnull=True
    )
    if waiting.values_list("pk", flat=True).first() is None:
        return []
    if Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING).exists():
        return []  # one agent at a time
    profiles = AgentProfile.objects.filter(
        tenant_id=conversation.tenant_id,
        presence=Presence.ONLINE,
        user__is_active=True,
        user__queue_memberships__queue=queue,
    ).exclude(user__chat_offers__conversation=conversation)
    profiles = profiles.exclude(user__transferred_routes__conversation=conversation)
    if only_user_ids is not None:
        profiles = profiles.filter(user_id__in=list(only_user_ids))
    candidates = list(profiles.values_list("pk", "user_id", "max_chats", "idle_since", "last_offered_at"))
    load = _load(conversation.tenant_id, [row[1] for row in candidates])
    agent = _agent_locked(conversation.tenant_id, _ranked(queue, candidates, load))
    if agent is not None:
        return [
            offer_make(conversation=conversation, agent=agent, queue=queue, transferred_by_id=route.transferred_from_id)
        ]
    if only_user_ids is not None:
        return []
    # No one else can take it: an agent who rejected or missed it a while ago may have it again rather than the
    # visitor waiting for nobody (the sweep comes back to it once that time has passed).
    cutoff = timezone.now() - timedelta(seconds=settings.ROUTING_REOFFER_SECONDS)
    # Declined (rejected or missed) a while ago, and not since: each offer made is its own row.
    declined_lately = Offer.objects.filter(conversation=conversation, agent_id=OuterRef("user_id")).filter(
        Q(status=OfferStatus.PENDING) | Q(decided_at__gt=cutoff)
    )
    again = (
        AgentProfile.objects.filter(
            tenant_id=conversation.tenant_id,
            presence=Presence.ONLINE,
            user__is_active=True,
            user__queue_memberships__queue=queue,
        )
        .filter(
            user__chat_offers__conversation=conversation,
            user__chat_offers__status__in=[OfferStatus.REJECTED, OfferStatus.MISSED],
        )
        .exclude(Exists(declined_lately))
        .distinct()
    )
    again = again.exclude(user__transferred_routes__conversation=conversation)
    candidates = list(again.values_list("pk", "user_id", "max_chats", "idle_since", "last_offered_at"))
    if not candidates:
        return []
    load = _load(conversation.tenant_id, [row[1] for row in candidates])
    agent = _agent_locked(conversation.tenant_id, _ranked(queue, candidates, load))
    if agent is None:
        return []
    return [
        offer_make(conversation=conversation, agent=agent, queue=queue, transferred_by_id=route.transferred_from_id)
    ]


def offer_make(
    *,
    conversation: Conversation,
    agent: AgentProfile,
    queue: Queue | None,
    preview: str | None = None,
    transferred_by_id: int | None = None,
) -> Offer:
    """Offers the conversation to this agent (whose profile the caller locked), with the queue's answer time
    limit, and tells their consoles once committed. Each offer is a row of its own, also to an agent offered the
    chat before (a transfer to them, or routing coming back to them once no one else can take it), so what they
    did with the earlier one stays counted. `preview`: the caller read it already (conversation_previews) and
    prefetched the contact's identities. `transferred_by_id`: who transferred the chat before (the card says so).
    """
    now = timezone.now()
    answer_seconds = queue.answer_seconds if queue is not None else 0
    offer = Offer.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        agent_id=agent.user_id,
        queue=queue,
        status=OfferStatus.PENDING,
        expires_at=now + timedelta(seconds=answer_seconds) if answer_seconds else None,
        transferred_by_id=transferred_by_id,
    )
    AgentProfile.objects.filter(pk=agent.pk).update(last_offered_at=now)
    if preview is None:
        preview = conversation_preview(conversation)  # what the offer card shows of the conversation
        prefetch_related_objects([conversation], "contact__identities")
    publish_on_commit(
        group=agent_group(conversation.tenant_id, agent.user_id),
        event=events.offer_new(offer_data(offer, conversation, preview=preview)),
    )
    return offer


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
        queue_line_joined(tenant_id=conversation.tenant_id, queue_id=queue.pk, conversation_id=conversation.pk)
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
    closed = not widget_open_at(widget=widget, now=timezone.now())
    offline = closed or not widget_admission(widget=widget, lock=True).available
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
    if not offline and queue is not None:
        # In line from now: a visitor whose widget never connects, or is gone past the grace, leaves it (the
        # widget's socket keeps this lease while it is open).
        visitor_lease_renew(
            tenant_id=conversation.tenant_id,
            conversation_id=conversation.pk,
            seconds=None,
            waiting_seconds=settings.QUEUE_LEAVE_GRACE_SECONDS,
        )
    conversation_route(conversation=conversation, queue=queue)
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
    if not offers:
        return
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


def _routed_queue(conversation: Conversation) -> Queue | None:
    """The queue of a conversation read with `queue_route__queue` (conversation_queue, without a query)."""
    try:
        return conversation.queue_route.queue
    except ConversationRoute.DoesNotExist:
        return None


@transaction.atomic
def conversation_accept(*, actor: AgentActor, conversation_id: int) -> Conversation:
    """Takes a waiting conversation; exactly one of several agents accepting at once wins."""
    # Locking the agent's own profile first serialises their accepts (two tabs): the cap holds.
    profile = AgentProfile.objects.select_for_update().filter(tenant_id=actor.tenant_id, user=actor.user).first()
    if profile is None:
        raise PermissionDenied("You have no agent profile.")
    # Not locked yet: a chat that is no longer waiting is refused without waiting for whoever holds it (their
    # end or transfer may be waiting for this agent's profile).
    conversation = (
        Conversation.objects.for_tenant(actor.tenant_id)
        .select_related("widget", "queue_route__queue")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFound("conversation")
    queue = _routed_queue(conversation)
    member = (
        queue is None
        or actor.supervises
        or QueueMember.objects.filter(tenant_id=actor.tenant_id, queue=queue, user=actor.user).exists()
        or Offer.objects.filter(conversation=conversation, agent=actor.user).exists()
    )
    if not member:
        raise ApplicationError("not_in_queue", "This conversation waits in a queue you are not a member of.")
    if conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("not_waiting", "This conversation is closed.", status=409)
    if conversation.status != ConversationStatus.WAITING or conversation.assignee_id is not None:
        raise Conflict("already_taken", "Another agent took this conversation.")
    if _open_load(actor.tenant_id, [actor.user.pk]).get(actor.user.pk, 0) >= profile.max_chats:
        raise Conflict("at_capacity", f"You already have {profile.max_chats} open conversations.")
    now = timezone.now()
    # The race is decided here, by the database: the second UPDATE finds the row no longer waiting.
    first_answer = conversation.answered_at is None  # else handed on (a transfer): answered long ago
    won = Conversation.objects.filter(
        pk=conversation.pk, tenant_id=actor.tenant_id, status=ConversationStatus.WAITING, assignee__isnull=True
    ).update(status=ConversationStatus.OPEN, assignee=actor.user, answered_at=Coalesce("answered_at", Value(now)))
    if not won:
        raise Conflict("already_taken", "Another agent took this conversation.")
    conversation.refresh_from_db()  # the row is ours now: what changed since the read above is seen
    conversation.assignee = actor.user
    profile.idle_since = now
    profile.save(update_fields=["idle_since"])
    queue_line_moved(tenant_id=actor.tenant_id, queue_id=queue.pk if queue is not None else None)
    pending = list(Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING))
    own = [offer for offer in pending if offer.agent_id == actor.user.pk]
    if own:
        Offer.objects.filter(pk=own[0].pk).update(status=OfferStatus.ACCEPTED, decided_at=now)
        publish_on_commit(
            group=agent_group(actor.tenant_id, actor.user.pk),
            event=events.offer_withdrawn(conversation_id=conversation.pk, offer_id=own[0].pk, reason="accepted"),
        )
    _withdraw_offers([offer for offer in pending if offer.agent_id != actor.user.pk], reason_for={}, default="taken")
    name = events.agent_public_name(actor.user)
    notices = [Notice(event="agent.joined", body=f"{name} joined the chat.", event_data={"agent_name": name})]
    if queue is not None and first_answer:
        # For the agent: where the visitor came from, and how long they waited there.
        waited = max(0, round((now - conversation.created_at).total_seconds()))
        notices.append(
            Notice(
                event="queue.came_from",
                body=f"The visitor came from the queue {queue.name} after waiting {duration_text(waited)}.",
                event_data={"queue": queue.name, "waited_seconds": waited},
                private=True,
            )
        )
    system_notices_post(conversation=conversation, notices=notices)
    conversation_updated_publish(conversation, agents_only=False, current=True)
    publish_on_commit(
        group=agent_group(actor.tenant_id, actor.user.pk), event=events.conversation_assigned(conversation.pk)
    )
    publish_on_commit(group=tenant_agents_group(actor.tenant_id), event=events.waiting_removed(conversation.pk))
    webhook_event_record(
        tenant_id=actor.tenant_id,
        type=CONVERSATION_ASSIGNED,
        data=conversation_assigned_data(
            conversation, agent_id=actor.user.pk, queue_id=queue.pk if queue is not None else None
        ),
    )
    return conversation


@transaction.atomic
def offer_reject(*, actor: AgentActor, conversation_id: int) -> Offer:
    """The agent declines an offer: it goes to the next eligible agent at once (never back to this one)."""
    conversations_lock(actor.tenant_id, [conversation_id])
    offer = (
        Offer.objects.select_for_update()
        .filter(tenant_id=actor.tenant_id, conversation_id=conversation_id, agent=actor.user)
        .order_by("-pk")  # the latest offer to them (an earlier one was answered already)
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
        _offer_onwards(actor.tenant_id, [offer.conversation_id])
    return offer


def conversations_lock(tenant_id: int, conversation_ids: Iterable[int]) -> None:
    """Locks conversations' rows, in id order, before their offers are touched: every path that changes an
    offer takes the conversation first (accept's conditional UPDATE does), so no two paths wait on each other
    in opposite orders."""
    list(
        Conversation.objects.select_for_update()
        .filter(tenant_id=tenant_id, pk__in=list(conversation_ids))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _offer_onwards(tenant_id: int, conversation_ids: Iterable[int]) -> int:
    """Conversations whose offer ended without an answer go to the next eligible agent, oldest first; returns
    how many got one."""
    made = 0
    conversations = Conversation.objects.for_tenant(tenant_id).filter(pk__in=list(conversation_ids))
    for conversation in conversations.order_by("created_at", "pk"):
        made += len(conversation_offer(conversation=conversation))
    return made


@transaction.atomic
def agent_offers_refresh(*, actor: AgentActor) -> list[Offer]:
    """Offers an agent who has room the oldest waiting conversations of their queues not yet offered to them."""
    profile = (
        AgentProfile.objects.select_for_update()
        .filter(tenant_id=actor.tenant_id, user=actor.user, presence=Presence.ONLINE)
        .first()
    )
    return _offers_refresh_locked(actor, profile)


def _offers_refresh(actor: AgentActor, profile: AgentProfile | None) -> list[Offer]:
    """agent_offers_refresh with the agent's profile already read, inside the caller's transaction.

    The agent's profile is locked first (as accept and every offer to them lock it), so their room is counted
    once for the whole pick. The oldest waiting conversations are then taken with SKIP LOCKED: agents
    refreshing at once in several processes each get different ones instead of queueing behind the same
    first rows. What a conversation's row lock cannot show (a colleague's offer committed after this
    statement's snapshot) is read again once the rows are held."""
    if profile is None or profile.presence != Presence.ONLINE:
        return []
    profile = AgentProfile.objects.select_for_update().filter(pk=profile.pk, presence=Presence.ONLINE).first()
    return _offers_refresh_locked(actor, profile)


def _offers_refresh_locked(actor: AgentActor, profile: AgentProfile | None) -> list[Offer]:
    """_offers_refresh once the caller locked the agent's profile (None: not online)."""
    if profile is None:
        return []
    room = profile.max_chats - _load(actor.tenant_id, [actor.user.pk]).get(actor.user.pk, 0)
    if room <= 0:
        return []
    waiting = list(
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(
            status=ConversationStatus.WAITING,
            assignee__isnull=True,
            queue_route__queue__memberships__user=actor.user,
        )
        .exclude(offers__agent=actor.user)
        .exclude(queue_route__transferred_from=actor.user)
        .exclude(offers__status=OfferStatus.PENDING)  # held by a colleague's offer: theirs to answer first
        .select_related("widget", "contact", "queue_route__queue")
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("created_at", "pk")[:room]
    )
    if not waiting:
        return []
    held = set(
        Offer.objects.filter(conversation_id__in=[c.pk for c in waiting], status=OfferStatus.PENDING).values_list(
            "conversation_id", flat=True
        )
    )
    waiting = [c for c in waiting if c.pk not in held]
    previews = conversation_previews(tenant_id=actor.tenant_id, conversation_ids=[c.pk for c in waiting])
    prefetch_related_objects(waiting, "contact__identities")
    offers = [
        offer_make(
            conversation=conversation,
            agent=profile,
            queue=conversation.queue_route.queue,
            preview=previews.get(conversation.pk, ""),
            transferred_by_id=conversation.queue_route.transferred_from_id,
        )
        for conversation in waiting
    ]
    return offers


@transaction.atomic
def conversation_end(*, actor: Actor, conversation_id: int, disposition_id: int | None = None) -> CloseResult:
    """Closes a conversation (visitor's "end chat" or an agent's close) and releases what routing held for it.
    An agent with an invited colleague in the chat only leaves it (the visitor goes on with the colleague)."""
    result = conversation_close(actor=actor, conversation_id=conversation_id, disposition_id=disposition_id)
    if result.left and isinstance(actor, AgentActor):
        # They left it to a colleague: they have room again.
        agent_idle_from_now(tenant_id=actor.tenant_id, user_id=actor.user.pk)
        agent_offers_refresh(actor=actor)
        return result
    if not result.closed_now:
        return result
    conversation = result.conversation
    pending = Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING)
    _withdraw_offers(list(pending), reason_for={}, default="closed")
    if result.previous_status == ConversationStatus.WAITING:
        route = ConversationRoute.objects.filter(tenant_id=conversation.tenant_id, conversation=conversation).first()
        in_line = route is not None and route.unserved_at is None and not conversation.started_offline
        if route is not None and in_line and conversation.channel == Channel.WEB and isinstance(actor, VisitorActor):
            # The visitor ended the chat while waiting in line for an agent: they abandoned it, as one whose
            # widget went away does (`queue_abandon`); today's figures count both.
            ConversationRoute.objects.filter(pk=route.pk).update(abandoned_at=timezone.now())
        queue_line_moved(tenant_id=conversation.tenant_id, queue_id=route.queue_id if route is not None else None)
        publish_on_commit(
            group=tenant_agents_group(conversation.tenant_id), event=events.waiting_removed(conversation.pk)
        )
    assignee = conversation.assignee if conversation.assignee_id is not None else None  # read for the close
    if assignee is not None:
        agent_idle_from_now(tenant_id=conversation.tenant_id, user_id=assignee.pk)
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
