"""Queueing's reads: the waiting list, an agent's pending offers and the console's inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, IntegerField, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Left

from agents.models import AgentProfile, Presence
from chat.models import Channel, Conversation, ConversationStatus, Message, SenderKind
from chat.selectors import AgentActor, first_visitor_words, preview_text
from contactcenter.errors import ApplicationError
from queueing.events import offer_data, waiting_item
from queueing.models import CapacityKind, ConversationRoute, Offer, OfferStatus, Queue, QueueMember

WAITING_LIST_LIMIT = 200


def agent_queue_ids(*, actor: AgentActor) -> list[int]:
    return list(
        QueueMember.objects.filter(tenant_id=actor.tenant_id, user=actor.user).values_list("queue_id", flat=True)
    )


def conversation_route_of(*, conversation: Conversation) -> ConversationRoute | None:
    """Where the conversation was routed, with its queue (None: routed nowhere)."""
    return (
        ConversationRoute.objects.filter(tenant_id=conversation.tenant_id, conversation_id=conversation.pk)
        .select_related("queue")
        .first()
    )


def conversation_queue(*, conversation: Conversation) -> Queue | None:
    """The queue the conversation was routed to (None: routed nowhere, or its queue was deleted since)."""
    route = conversation_route_of(conversation=conversation)
    return route.queue if route is not None else None


def conversation_queues(*, tenant_id: int, conversation_ids: list[int]) -> dict[int, dict[str, Any]]:
    """conversation id → `{"id", "name"}` of the queue each was routed to, in one query (absent: none)."""
    if not conversation_ids:
        return {}
    rows = ConversationRoute.objects.filter(tenant_id=tenant_id, conversation_id__in=conversation_ids).values_list(
        "conversation_id", "queue_id", "queue_name"
    )
    return {conversation_id: {"id": queue_id, "name": name} for conversation_id, queue_id, name in rows}


def with_queue(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """The same conversations with their route joined: `conversation.queue_route.queue_name` costs no query."""
    return conversations.select_related("queue_route")


def _waiting(actor: AgentActor) -> QuerySet[Conversation]:
    """Conversations the agent may pick up without an offer: waiting in their queues, or routed nowhere; oldest
    first, at most WAITING_LIST_LIMIT."""
    queryset = Conversation.objects.for_tenant(actor.tenant_id).filter(
        status=ConversationStatus.WAITING, assignee__isnull=True
    )
    if not actor.supervises:
        queryset = queryset.filter(
            Q(queue_route__queue__memberships__user=actor.user) | Q(queue_route__queue__isnull=True)
        ).distinct()
    return queryset.order_by("created_at", "pk")[:WAITING_LIST_LIMIT]


def waiting_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    """The waiting list as the console shows it (`waiting_item`s)."""
    items = []
    waiting = _waiting(actor).select_related("widget", "contact", "queue_route__queue")
    for conversation in waiting.annotate(first_words=first_visitor_words()):
        route = getattr(conversation, "queue_route", None)
        queue = route.queue if route is not None else None
        items.append(waiting_item(conversation, queue, preview=preview_text(conversation.first_words)))
    return items


def waiting_ids(*, actor: AgentActor) -> set[int]:
    """The ids of the waiting list, without building it: what a console's state is checked against."""
    return set(_waiting(actor).values_list("pk", flat=True))


def _pending_offers(actor: AgentActor) -> QuerySet[Offer]:
    return Offer.objects.filter(
        tenant_id=actor.tenant_id,
        agent=actor.user,
        status=OfferStatus.PENDING,
        conversation__status=ConversationStatus.WAITING,
    )


def pending_offer_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    offers = (
        _pending_offers(actor)
        .select_related("conversation__widget", "conversation__contact", "queue", "transferred_by")
        .prefetch_related("conversation__contact__identities")
        .annotate(first_words=first_visitor_words("conversation_id"))
        .order_by("created_at", "pk")
    )
    return [offer_data(offer, offer.conversation, preview=preview_text(offer.first_words)) for offer in offers]


def pending_offer_ids(*, actor: AgentActor) -> set[int]:
    """The conversation ids of the agent's pending offers (offers are keyed by conversation on the console)."""
    return set(_pending_offers(actor).values_list("conversation_id", flat=True))


# --- the console's inbox: every conversation the agent may see, by last activity (docs/protocol.md §7) -------

INBOX_LIMIT = 25
INBOX_LIMIT_MAX = 50
INBOX_PREVIEW_CHARS = 140
INBOX_ASSIGNEES = ("all", "mine", "unassigned")
# The console's status filter onto ConversationStatus: "active" is everything not closed; "" is any status.
INBOX_STATUSES: dict[str, tuple[str, ...]] = {
    "": (),
    "active": (ConversationStatus.WAITING, ConversationStatus.OPEN),
    "open": (ConversationStatus.OPEN,),
    "waiting": (ConversationStatus.WAITING,),
    "closed": (ConversationStatus.CLOSED,),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class InboxFilters:
    """The inbox's filters, checked: `assignee` one of INBOX_ASSIGNEES, `channel` a Channel or "" (any),
    `status` a key of INBOX_STATUSES."""

    assignee: str = "all"
    channel: str = ""
    status: str = ""


def inbox_filters_clean(*, assignee: str, channel: str, status: str) -> InboxFilters:
    """The filters as typed by a client; `invalid` naming each unknown value."""
    errors: dict[str, list[str]] = {}
    if assignee not in INBOX_ASSIGNEES:
        errors["assignee"] = [f"One of {', '.join(INBOX_ASSIGNEES)}."]
    if channel and channel not in Channel.values:
        errors["channel"] = [f"One of {', '.join(Channel.values)}, or empty for any."]
    if status not in INBOX_STATUSES:
        errors["status"] = [f"One of {', '.join(s for s in INBOX_STATUSES if s)}, or empty for any."]
    if errors:
        raise ApplicationError("invalid", "Unknown inbox filter.", errors)
    return InboxFilters(assignee=assignee, channel=channel, status=status)


@dataclass(frozen=True)
class InboxCursor:
    """Where a page ended: the last row's activity and id (rows move up as they get messages, never down, so
    a cursor stays valid while the list changes above it)."""

    activity: datetime
    pk: int

    def encode(self) -> str:
        return f"{(self.activity - _EPOCH) // timedelta(microseconds=1)}.{self.pk}"

    @classmethod
    def decode(cls, raw: str) -> InboxCursor:
        micros, _, pk = raw.partition(".")
        if not micros.lstrip("-").isdigit() or not pk.isdigit():
            raise ApplicationError("invalid", "Unknown cursor.", {"cursor": ["Pass next_cursor back as it was."]})
        return cls(activity=_EPOCH + timedelta(microseconds=int(micros)), pk=int(pk))


@dataclass(frozen=True)
class InboxPage:
    # Each conversation carries `activity`, `unread` and `preview` (_inbox_annotated).
    conversations: list[Any]
    next_cursor: str | None


def _inbox_visible(actor: AgentActor) -> QuerySet[Conversation]:
    """What the agent may see in the inbox. Supervisors and admins: the tenant's every conversation. An agent:
    those they are assignee or participant of (as the conversations page's `taken_by`), and the unassigned ones
    of their queues or routed nowhere (as the waiting list, whatever their status)."""
    conversations = Conversation.objects.for_tenant(actor.tenant_id)
    if actor.supervises:
        return conversations
    my_queues = QueueMember.objects.filter(tenant_id=actor.tenant_id, user=actor.user).values("queue_id")
    pickable = Q(assignee__isnull=True) & (Q(queue_route__queue__isnull=True) | Q(queue_route__queue__in=my_queues))
    return conversations.filter(_taken_by(actor) | pickable)


def _taken_by(actor: AgentActor) -> Q:
    participates = Conversation.participants.through.objects.filter(
        conversation_id=OuterRef("pk"), user_id=actor.user.pk
    )
    return Q(assignee=actor.user) | Q(Exists(participates))


def _inbox_filtered(actor: AgentActor, filters: InboxFilters) -> QuerySet[Conversation]:
    conversations = _inbox_visible(actor)
    if filters.assignee == "mine":
        conversations = conversations.filter(_taken_by(actor))
    elif filters.assignee == "unassigned":
        conversations = conversations.filter(assignee__isnull=True)
    if filters.channel:
        conversations = conversations.filter(channel=filters.channel)
    if INBOX_STATUSES[filters.status]:
        conversations = conversations.filter(status__in=INBOX_STATUSES[filters.status])
    return conversations


def _inbox_annotated(conversations: QuerySet[Conversation]) -> QuerySet[Any]:
    """Each row's last activity, unread count (the customer's messages after the agents' read marker) and
    preview (the latest words the customer could see, never a private note), in the one statement."""
    unread = (
        Message.objects.filter(
            conversation_id=OuterRef("pk"), sender_kind=SenderKind.VISITOR, seq__gt=OuterRef("agent_read_seq")
        )
        .order_by()
        .values("conversation_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    latest = (
        Message.objects.filter(conversation_id=OuterRef("pk"), is_private=False)
        .exclude(body="")
        .order_by("-seq")
        .annotate(snippet=Left("body", INBOX_PREVIEW_CHARS))
        .values("snippet")[:1]
    )
    return (
        conversations.select_related("contact", "assignee", "queue_route")
        .prefetch_related("contact__identities", "participants")
        .annotate(
            activity=Coalesce("last_message_at", "created_at"),
            unread=Coalesce(Subquery(unread, output_field=IntegerField()), 0),
            preview=Subquery(latest),
        )
    )


def inbox_list(
    *, actor: AgentActor, filters: InboxFilters, cursor: str | None = None, limit: int = INBOX_LIMIT
) -> InboxPage:
    """One page of the inbox, newest activity first; `next_cursor` fetches the page after it (None: the end)."""
    limit = max(1, min(int(limit), INBOX_LIMIT_MAX))
    conversations = _inbox_annotated(_inbox_filtered(actor, filters))
    if cursor:
        after = InboxCursor.decode(cursor)
        conversations = conversations.filter(
            Q(activity__lt=after.activity) | Q(activity=after.activity, pk__lt=after.pk)
        )
    rows = list(conversations.order_by("-activity", "-pk")[: limit + 1])
    page = rows[:limit]
    more = len(rows) > limit
    return InboxPage(
        conversations=page,
        next_cursor=InboxCursor(activity=page[-1].activity, pk=page[-1].pk).encode() if more else None,
    )


def inbox_rows_get(*, actor: AgentActor, filters: InboxFilters, conversation_ids: list[int]) -> list[Any]:
    """Those of `conversation_ids` that the agent may see and that pass the filters, as inbox rows: how a
    console refreshes the rows `inbox.changed` named (one it asked for and did not get leaves its list)."""
    wanted = conversation_ids[:INBOX_LIMIT_MAX]
    conversations = _inbox_annotated(_inbox_filtered(actor, filters).filter(pk__in=wanted))
    return list(conversations.order_by("-activity", "-pk"))


# --- a visitor's place in line --------------------------------------------------------------------------------

PLACES_ANNOUNCED = 200  # places re-announced when the line moves; those further back see theirs at their next hello
ESTIMATE_WINDOW = timedelta(hours=2)
ESTIMATE_SAMPLES = 20
ESTIMATE_MIN_SAMPLES = 5


# Web visitors waiting live in a queue's line for an agent: offline messages (and the chats left waiting when
# the queue's last agent went offline) wait in the console, and SMS, WhatsApp and email customers in the inbox,
# not in line (they take no place and are told none). A condition on Conversation.
IN_LINE = Q(
    queue_route__unserved_at__isnull=True,
    channel=Channel.WEB,
    status=ConversationStatus.WAITING,
    assignee__isnull=True,
    started_offline=False,
)


def _in_line(tenant_id: int, queue_id: int) -> QuerySet[Conversation]:
    return Conversation.objects.filter(IN_LINE, tenant_id=tenant_id, queue_route__queue_id=queue_id)


def queue_line(*, tenant_id: int, queue_id: int) -> QuerySet[Conversation]:
    """The conversations in a queue's line (IN_LINE), unordered."""
    return _in_line(tenant_id, queue_id)


def queue_agents_at_work(*, tenant_id: Any, queue_id: Any) -> QuerySet[AgentProfile]:
    """The queue's active members at work: online, or away or paused for a while (they come back to it).
    `tenant_id` and `queue_id` may be OuterRefs (a subquery per line)."""
    return AgentProfile.objects.filter(
        tenant_id=tenant_id, user__is_active=True, user__queue_memberships__queue_id=queue_id
    ).exclude(presence=Presence.OFFLINE)


def queue_waiting_count(*, tenant_id: int, queue_id: int) -> int:
    return _in_line(tenant_id, queue_id).count()


def queue_line_summary(*, tenant_id: int, queue_id: int) -> tuple[int, datetime | None]:
    """How many web visitors wait in the queue's line, and since when the first of them waits (None: nobody)."""
    figures = _in_line(tenant_id, queue_id).aggregate(count=Count("pk"), oldest=Min("created_at"))
    return figures["count"], figures["oldest"]


def queue_places_total(*, queue: Queue, online_members: int) -> int:
    """The places of a queue's line: `capacity`, or `capacity` per online member (none while nobody is online
    makes no difference here: admission then refuses before it counts places)."""
    return queue.capacity * (online_members if queue.capacity_kind == CapacityKind.PER_AGENT else 1)


def queue_wait_estimate(*, tenant_id: int, queue_id: int) -> float | None:
    """Seconds per place in line, from the queue's recent pace: the last ESTIMATE_SAMPLES chats of this queue
    an agent answered within ESTIMATE_WINDOW, (n - 1) answers over the time between the first and the last.
    None until there are ESTIMATE_MIN_SAMPLES of them (no history, no estimate)."""
    since = datetime.now(tz=UTC) - ESTIMATE_WINDOW
    answered: list[datetime] = [
        at
        for at in Conversation.objects.filter(
            tenant_id=tenant_id, queue_route__queue_id=queue_id, answered_at__gte=since
        )
        .order_by("-answered_at")
        .values_list("answered_at", flat=True)[:ESTIMATE_SAMPLES]
        if at is not None
    ]
    if len(answered) < ESTIMATE_MIN_SAMPLES:
        return None
    span = (answered[0] - answered[-1]).total_seconds()
    return span / (len(answered) - 1) if span > 0 else None


def estimated_wait(per_place: float | None, position: int) -> int | None:
    return round(per_place * position) if per_place is not None else None


def queue_places(*, tenant_id: int, queue_id: int) -> list[tuple[int, int]]:
    """(conversation id, place in line from 1) of the first PLACES_ANNOUNCED visitors waiting in the queue."""
    ids = _in_line(tenant_id, queue_id).order_by("created_at", "pk").values_list("pk", flat=True)[:PLACES_ANNOUNCED]
    return [(conversation_id, place) for place, conversation_id in enumerate(ids, start=1)]


def queue_place(*, conversation: Conversation) -> dict[str, Any] | None:
    """A waiting visitor's place in line and the estimated wait (`hello.queue`); None when not in a line."""
    if (
        conversation.status != ConversationStatus.WAITING
        or conversation.assignee_id is not None
        or conversation.started_offline
        or conversation.channel != Channel.WEB
    ):
        return None
    route = ConversationRoute.objects.filter(tenant_id=conversation.tenant_id, conversation=conversation).first()
    if route is None or route.queue_id is None or route.unserved_at is not None:
        return None
    ahead = (
        _in_line(conversation.tenant_id, route.queue_id)
        .filter(
            Q(created_at__lt=conversation.created_at) | Q(created_at=conversation.created_at, pk__lt=conversation.pk)
        )
        .count()
    )
    per_place = queue_wait_estimate(tenant_id=conversation.tenant_id, queue_id=route.queue_id)
    return {"position": ahead + 1, "estimated_wait_seconds": estimated_wait(per_place, ahead + 1)}
