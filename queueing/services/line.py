"""The visitors' line: each waiting visitor is told their place in the queue, and the estimated wait, when it
changes (docs/protocol.md, `queue.position`)."""

from __future__ import annotations

from functools import partial

from django.db import transaction

from contactcenter.realtime import conversation_group, publish_on_commit
from queueing.selectors import estimated_wait, queue_places, queue_wait_estimate


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
    hears their place."""
    if queue_id is not None:
        transaction.on_commit(partial(_announce, tenant_id, queue_id, None))


def queue_line_joined(*, tenant_id: int, queue_id: int | None, conversation_id: int) -> None:
    """A visitor joined the queue's line: once committed, they hear their place."""
    if queue_id is not None:
        transaction.on_commit(partial(_announce, tenant_id, queue_id, conversation_id))
