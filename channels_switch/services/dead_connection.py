"""Dead-connection detection, the twin of switching (seed 000): when every socket of a visitor has been gone longer
than the widget's timeout while an agent's reply waits unread, the chat moves by itself to the first channel the
visitor can be reached on, in the widget's order, recorded as by the system, and the replies the visitor never
saw go out with the introduction. A visitor who comes back in time notices nothing.

One deadline column, `Conversation.visitor_away_deadline`: each open visitor socket of a widget with detection on
holds a lease on it, renewed by the server (not the browser, whose timers a hidden tab slows to once a minute)
every third of the timeout, and set afresh when the socket closes. A socket whose server process died renews
nothing, so its lease runs out too. The periodic sweep acts on the deadlines that passed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_switch.selectors import widget_switching_for
from channels_switch.services.switch import conversation_switch
from channels_switch.services.switching import switch_options
from chat.models import Channel, Conversation, ConversationStatus, Message, SenderKind

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100
# A chat whose visitor is gone but has nothing unread yet is looked at again this much later: an agent's reply
# written after the visitor left moves it then.
RECHECK = timedelta(seconds=15)


def _unread_replies(conversation: Conversation) -> list[Message]:
    """The agents' messages the visitor has not seen (past their read marker), oldest first."""
    return list(
        Message.objects.for_tenant(conversation.tenant_id)
        .filter(
            conversation_id=conversation.pk,
            sender_kind=SenderKind.AGENT,
            is_private=False,
            seq__gt=conversation.visitor_read_seq,
        )
        .select_related("sender_user")
        .order_by("seq")
    )


def _move_if_gone(conversation_id: int, tenant_id: int) -> bool:
    now = timezone.now()
    with transaction.atomic():
        conversation = (
            Conversation.objects.for_tenant(tenant_id)
            .select_for_update(of=("self",))
            .filter(
                pk=conversation_id,
                visitor_away_deadline__lt=now,
                channel=Channel.WEB,
                status=ConversationStatus.OPEN,
            )
            .first()
        )
        if conversation is None:  # the visitor came back, or the chat closed or moved meanwhile
            return False
        same = Conversation.objects.filter(pk=conversation.pk)
        settings = widget_switching_for(tenant_id=tenant_id, widget_id=conversation.widget_id)
        if settings is None or not settings.dead_connection:  # turned off since the lease was taken
            same.update(visitor_away_deadline=None)
            return False
        unread = _unread_replies(conversation)
        if not unread:
            same.update(visitor_away_deadline=now + RECHECK)
            return False
        offered = [o for o in switch_options(conversation=conversation, by_system=True) if o.offered]
        if not offered:
            # Nowhere to reach the visitor (no address, the channels off): waiting changes nothing.
            same.update(visitor_away_deadline=None)
            return False
        conversation_switch(
            conversation_id=conversation.pk, channel=offered[0].channel, tenant_id=tenant_id, unread=unread
        )
    return True


def dead_connections_sweep() -> int:
    """Moves the chats whose visitor's lease ran out with a reply unread; returns how many moved."""
    due = (
        Conversation.objects.filter(
            visitor_away_deadline__lt=timezone.now(),
            channel=Channel.WEB,
            status=ConversationStatus.OPEN,
            last_seq__gt=F("visitor_read_seq"),
        )
        .order_by("visitor_away_deadline")
        .values_list("pk", "tenant_id")[:SWEEP_BATCH]
    )
    moved = 0
    for conversation_id, tenant_id in list(due):
        try:
            moved += _move_if_gone(conversation_id, tenant_id)
        except Exception:  # one chat's failure must not stop the others'; the next sweep tries it again
            logger.exception("dead-connection switch of conversation %s failed", conversation_id)
    return moved
