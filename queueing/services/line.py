"""The visitors' line: each waiting visitor is told their place in the queue, and the estimated wait, when it
changes (docs/protocol.md, `queue.position`)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, ConversationStatus
from chat.services import system_notice_post
from contactcenter.realtime import coalesced, conversation_group, publish_on_commit
from queueing.models import ConversationRoute
from queueing.selectors import (
    estimated_wait,
    queue_agents_at_work,
    queue_line,
    queue_places,
    queue_wait_estimate,
)

UNSERVED_NOTICE = (
    "Everyone who could answer has gone offline. Your message is kept: we will reply here as soon as someone is back."
)


def _position_event(conversation_id: int, position: int, per_place: float | None) -> dict[str, object]:
    return {
        "type": "queue.position",
        "conversation_id": conversation_id,
        "position": position,
        "estimated_wait_seconds": estimated_wait(per_place, position),
    }


def _announce(tenant_id: int, queue_id: int, only: int | None) -> None:
    """Read after the commit, so that two changes committed at once both count; sent at once."""
    per_place = queue_wait_estimate(tenant_id=tenant_id, queue_id=queue_id)
    for conversation_id, position in queue_places(tenant_id=tenant_id, queue_id=queue_id):
        if only is None or conversation_id == only:
            publish_on_commit(
                group=conversation_group(tenant_id, conversation_id),
                event=_position_event(conversation_id, position, per_place),
            )


def queue_line_moved(*, tenant_id: int, queue_id: int | None) -> None:
    """A visitor left the queue's line (answered, gone, moved elsewhere): once committed, everyone still in it
    hears their place. Coalesced per queue (QUEUE_LINE_ANNOUNCE_SECONDS): a line that moves many times a second
    is read and announced once for all of them, not once per visitor answered."""
    if queue_id is not None:
        announce = partial(_announce, tenant_id, queue_id, None)
        transaction.on_commit(
            partial(coalesced, ("queue.line", tenant_id, queue_id), settings.QUEUE_LINE_ANNOUNCE_SECONDS, announce)
        )


def queue_line_joined(*, tenant_id: int, queue_id: int | None, conversation_id: int) -> None:
    """A visitor joined the queue's line: once committed, they hear their place."""
    if queue_id is not None:
        transaction.on_commit(partial(_announce, tenant_id, queue_id, conversation_id))


@transaction.atomic
def queue_line_unserved(*, tenant_id: int, queue_ids: Iterable[int]) -> int:
    """The queues none of whose agents is at work any more: each visitor in their line is told (a notice in the
    chat, and `queue.position` with no place and the reason, so the widget shows what it shows when no one is
    online) and their chat waits on as a message left for later, out of the line, offered to the first agent
    back. Never left waiting in a line nobody serves. Returns how many visitors were told."""
    told = 0
    for queue_id in sorted(set(queue_ids)):
        if queue_agents_at_work(tenant_id=tenant_id, queue_id=queue_id).exists():
            continue
        conversation_ids = list(
            queue_line(tenant_id=tenant_id, queue_id=queue_id).order_by("pk").values_list("pk", flat=True)
        )
        if not conversation_ids:
            continue
        # Each conversation's row before its route is written (the order every routing path keeps).
        conversations = list(
            Conversation.objects.select_for_update()
            .filter(tenant_id=tenant_id, pk__in=conversation_ids, status=ConversationStatus.WAITING)
            .order_by("pk")
        )
        ConversationRoute.objects.filter(
            tenant_id=tenant_id, conversation_id__in=[c.pk for c in conversations], unserved_at__isnull=True
        ).update(unserved_at=timezone.now())
        for conversation in conversations:
            system_notice_post(
                conversation=conversation,
                event="queue.unserved",
                body=UNSERVED_NOTICE,
                event_data={"reason": "nobody_online"},
            )
            publish_on_commit(
                group=conversation_group(tenant_id, conversation.pk),
                event={
                    "type": "queue.position",
                    "conversation_id": conversation.pk,
                    "position": None,
                    "estimated_wait_seconds": None,
                    "reason": "nobody_online",
                },
            )
        told += len(conversations)
    return told
