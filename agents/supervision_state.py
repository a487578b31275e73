"""The supervision page's read model (an interface, like console_state): per queue its line and today's figures,
the team's agents by state with their chats, and the tenant's day, composed from queueing, chat and agents reads.

Every query names the tenant. "Today" starts at midnight in the project's time zone (settings.TIME_ZONE; tenants
have none of their own yet).
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Any

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.utils import timezone

from agents.models import AgentProfile, PauseReason, Presence
from chat.models import Conversation, ConversationStatus
from chat.selectors import AgentActor
from contactcenter.errors import ApplicationError
from contactcenter.models import user_display_name
from queueing.models import ConversationRoute, Offer, OfferStatus, Queue, QueueMember
from queueing.selectors import queue_line_summary, queue_places_total

# The page shows at most this many agents and queues (a team this size has long outgrown one screen).
AGENTS_SHOWN = 500
QUEUES_SHOWN = 100
WAIT_PERCENTILE = 0.9
# An agent's state on the page: their presence, except that an online agent with no room for another chat
# (open chats plus offers held at `max_chats`, as routing counts) is busy.
BUSY = "busy"
AGENT_STATES = (Presence.ONLINE.value, BUSY, Presence.AWAY.value, Presence.PAUSED.value, Presence.OFFLINE.value)


def day_start(now: datetime | None = None) -> datetime:
    """Midnight of today in the project's time zone (a DST day is as long as the wall clock says)."""
    zone = timezone.get_default_timezone()
    local = timezone.localtime(now or timezone.now(), zone)
    return datetime.combine(local.date(), time.min, tzinfo=zone)


def _seconds(value: timedelta | float | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value) / 1_000_000
    return round(seconds, 1)


def _with_wait(conversations: QuerySet[Conversation]) -> QuerySet[Any]:
    return conversations.annotate(
        wait=ExpressionWrapper(F("answered_at") - F("created_at"), output_field=DurationField())
    )


def _percentile(conversations: QuerySet[Any], count: int, fraction: float = WAIT_PERCENTILE) -> float | None:
    """The waits' percentile as PostgreSQL's percentile_cont computes it (linear between the two ranks around
    it), read as at most two rows with OFFSET: the same query on SQLite, however many chats the day had."""
    if count == 0:
        return None
    rank = fraction * (count - 1)
    low = math.floor(rank)
    pair = [
        _seconds(wait) for wait in conversations.order_by("wait", "pk").values_list("wait", flat=True)[low : low + 2]
    ]
    values = [value for value in pair if value is not None]
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(values[0] + (values[1] - values[0]) * (rank - low), 1)


def _today(tenant_id: int, since: datetime, queue_ids: list[int]) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Today's figures per queue (by id) and for the whole tenant: chats offered (conversations with an offer
    made today), answered (taken by an agent today), offers missed, visitors who left the line, and the wait
    (answered - started) of the chats answered today: average and 90th percentile, in seconds."""
    offers = Offer.objects.filter(tenant_id=tenant_id, created_at__gte=since)
    missed = Offer.objects.filter(tenant_id=tenant_id, status=OfferStatus.MISSED, decided_at__gte=since)
    abandoned = ConversationRoute.objects.filter(tenant_id=tenant_id, abandoned_at__gte=since)
    answered = _with_wait(Conversation.objects.filter(tenant_id=tenant_id, answered_at__gte=since))

    per_queue: dict[int, dict[str, Any]] = {
        queue_id: {
            "offered": 0,
            "answered": 0,
            "missed": 0,
            "abandoned": 0,
            "average_wait_seconds": None,
            "p90_wait_seconds": None,
        }
        for queue_id in queue_ids
    }

    def put(rows: QuerySet[Any], key: str, field: str = "queue_id") -> None:
        for row in rows:
            if row[field] in per_queue:
                per_queue[row[field]][key] = row["n"]

    put(offers.values("queue_id").annotate(n=Count("conversation_id", distinct=True)).order_by(), "offered")
    put(missed.values("queue_id").annotate(n=Count("pk")).order_by(), "missed")
    put(abandoned.values("queue_id").annotate(n=Count("pk")).order_by(), "abandoned")
    by_queue = (
        answered.filter(queue_route__queue_id__in=queue_ids)
        .values("queue_route__queue_id")
        .annotate(n=Count("pk"), average=Avg("wait"))
        .order_by()
    )
    for row in by_queue:
        figures = per_queue[row["queue_route__queue_id"]]
        figures["answered"] = row["n"]
        figures["average_wait_seconds"] = _seconds(row["average"])
        figures["p90_wait_seconds"] = _percentile(
            answered.filter(queue_route__queue_id=row["queue_route__queue_id"]), row["n"]
        )

    total = answered.aggregate(n=Count("pk"), average=Avg("wait"))
    tenant = {
        "offered": offers.aggregate(n=Count("conversation_id", distinct=True))["n"],
        "answered": total["n"],
        "missed": missed.count(),
        "abandoned": abandoned.count(),
        "average_wait_seconds": _seconds(total["average"]),
        "p90_wait_seconds": _percentile(answered, total["n"]),
    }
    return per_queue, tenant


def _queues(tenant_id: int, now: datetime, since: datetime) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    queues = list(Queue.objects.for_tenant(tenant_id).order_by("name", "pk")[:QUEUES_SHOWN])
    ids = [queue.pk for queue in queues]
    online = dict(
        QueueMember.objects.filter(
            tenant_id=tenant_id,
            queue_id__in=ids,
            user__is_active=True,
            user__agent_profile__presence=Presence.ONLINE,
        )
        .values("queue_id")
        .annotate(n=Count("user_id", distinct=True))
        .order_by()
        .values_list("queue_id", "n")
    )
    # Everything waiting for an agent in the queue: its line, and also messages left for later and SMS,
    # WhatsApp and email conversations, which take no place in the line.
    waiting = dict(
        Conversation.objects.filter(
            tenant_id=tenant_id, status=ConversationStatus.WAITING, assignee__isnull=True, queue_route__queue_id__in=ids
        )
        .values("queue_route__queue_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("queue_route__queue_id", "n")
    )
    today, tenant_today = _today(tenant_id, since, ids)
    rows = []
    for queue in queues:
        in_line, oldest = queue_line_summary(tenant_id=tenant_id, queue_id=queue.pk)
        members_online = online.get(queue.pk, 0)
        places = queue_places_total(queue=queue, online_members=members_online)
        rows.append(
            {
                "id": queue.pk,
                "name": queue.name,
                "capacity_kind": queue.capacity_kind,
                "capacity": queue.capacity,
                "members_online": members_online,
                "in_line": in_line,
                "waiting": waiting.get(queue.pk, 0),
                "places": places,
                # Nobody online: no visitor can join the line at all (the widget takes a message).
                "places_left": max(places - in_line, 0) if members_online else 0,
                "longest_wait_since": oldest.isoformat() if oldest else None,
                "longest_wait_seconds": round((now - oldest).total_seconds()) if oldest else None,
                "today": today[queue.pk],
            }
        )
    return rows, tenant_today


def _agents(tenant_id: int) -> list[dict[str, Any]]:
    profiles = list(
        AgentProfile.objects.for_tenant(tenant_id)
        .filter(user__is_active=True)
        .select_related("user", "pause_reason")
        .order_by("user__first_name", "user__last_name", "user__email", "pk")[:AGENTS_SHOWN]
    )
    user_ids = [profile.user_id for profile in profiles]
    chats = dict(
        Conversation.objects.filter(tenant_id=tenant_id, status=ConversationStatus.OPEN, assignee_id__in=user_ids)
        .values("assignee_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("assignee_id", "n")
    )
    offers = dict(
        Offer.objects.filter(tenant_id=tenant_id, status=OfferStatus.PENDING, agent_id__in=user_ids)
        .values("agent_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("agent_id", "n")
    )
    rows = []
    for profile in profiles:
        open_chats, held = chats.get(profile.user_id, 0), offers.get(profile.user_id, 0)
        state = profile.presence
        if state == Presence.ONLINE and open_chats + held >= profile.max_chats:
            state = BUSY
        paused = profile.presence == Presence.PAUSED and profile.pause_reason is not None
        rows.append(
            {
                "user_id": profile.user_id,
                "name": user_display_name(profile.user),
                "presence": profile.presence,
                "state": state,
                "pause_reason": profile.pause_reason.name if paused and profile.pause_reason else None,
                "presence_since": profile.presence_changed_at.isoformat() if profile.presence_changed_at else None,
                "chats": open_chats,
                "offers": held,
                "max_chats": profile.max_chats,
            }
        )
    return rows


def supervision_snapshot(*, actor: AgentActor, now: datetime | None = None) -> dict[str, Any]:
    """The whole page's state (docs/protocol.md §4a `supervision.snapshot`), for a supervisor or an admin."""
    if not actor.supervises:
        raise ApplicationError("forbidden", "The supervision page is for supervisors and admins.")
    now = now or timezone.now()
    since = day_start(now)
    queues, today = _queues(actor.tenant_id, now, since)
    agents = _agents(actor.tenant_id)
    counts = dict.fromkeys(AGENT_STATES, 0)
    for agent in agents:
        counts[agent["state"]] += 1
    return {
        "generated_at": now.isoformat(),
        "day_start": since.isoformat(),
        "queues": queues,
        "agents": agents,
        "agent_counts": counts,
        "today": today,
        "unrouted_waiting": _unrouted_waiting(actor.tenant_id),
        "pause_reasons": list(
            PauseReason.objects.for_tenant(actor.tenant_id)
            .filter(is_active=True, system="")
            .order_by("name")
            .values("id", "name")
        ),
    }


def _unrouted_waiting(tenant_id: int) -> int:
    """Conversations waiting for an agent that were routed to no queue (shown apart from the queues)."""
    return (
        Conversation.objects.filter(tenant_id=tenant_id, status=ConversationStatus.WAITING, assignee__isnull=True)
        .filter(Q(queue_route__isnull=True) | Q(queue_route__queue__isnull=True))
        .count()
    )
