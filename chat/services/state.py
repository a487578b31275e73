"""Conversation state changes: important flag, disposition, close; each announced with a new version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.models import Disposition
from chat import events
from chat.models import (
    Channel,
    Conversation,
    ConversationStatus,
)
from chat.selectors import (
    Actor,
    AgentActor,
    conversation_get_for,
)
from chat.services.messages import switched_away, system_notice_post
from contactcenter.errors import ApplicationError
from contactcenter.realtime import (
    agent_group,
    conversation_agents_group,
    conversation_group,
    publish_on_commit,
    tenant_inbox_group,
)
from contactcenter.services.webhooks_out import CONVERSATION_CLOSED, conversation_data, webhook_event_record


def conversation_updated_publish(conversation: Conversation, *, agents_only: bool, current: bool = False) -> None:
    """Announces the conversation's state with a new version, after commit.

    The version is taken by an UPDATE, which holds the row's lock to the end of the transaction: two changes
    in two processes get their versions in commit order, whichever event Redis delivers first. `current`: the
    caller read the row under its lock and set on the instance everything it changed since, so the row is not
    read back.
    """
    Conversation.objects.filter(pk=conversation.pk).update(state_version=F("state_version") + 1)
    if current:
        conversation.state_version += 1
    else:
        conversation.refresh_from_db()
    group = (
        conversation_agents_group(conversation.tenant_id, conversation.pk)
        if agents_only
        else conversation_group(conversation.tenant_id, conversation.pk)
    )
    publish_on_commit(group=group, event=events.conversation_updated(conversation))
    publish_on_commit(group=tenant_inbox_group(conversation.tenant_id), event=events.inbox_changed(conversation.pk))


@transaction.atomic
def conversation_mark_important(*, actor: AgentActor, conversation_id: int, important: bool) -> Conversation:
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    if conversation.important != important:
        conversation.important = important
        conversation.save(update_fields=["important"])
        conversation_updated_publish(conversation, agents_only=True)
    return conversation


def _disposition_for(tenant_id: int, disposition_id: int) -> Disposition:
    disposition = Disposition.objects.for_tenant(tenant_id).filter(pk=disposition_id, is_active=True).first()
    if disposition is None:
        raise ApplicationError(
            "invalid_disposition", "No such status.", {"disposition_id": ["Not an active status of yours."]}
        )
    return disposition


@transaction.atomic
def conversation_set_disposition(
    *, actor: AgentActor, conversation_id: int, disposition_id: int | None
) -> Conversation:
    """The outcome the agent picks; allowed after a close too (the visitor may have ended the chat first)."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    disposition = None if disposition_id is None else _disposition_for(conversation.tenant_id, disposition_id)
    new_id = disposition.pk if disposition is not None else None
    if conversation.disposition_id != new_id:
        if new_id is None and conversation.status == ConversationStatus.CLOSED:
            raise ApplicationError("disposition_required", "A closed conversation keeps its status.")
        conversation.disposition = disposition
        conversation.save(update_fields=["disposition"])
        conversation_updated_publish(conversation, agents_only=True)
    return conversation


@dataclass(frozen=True)
class CloseResult:
    conversation: Conversation
    closed_now: bool
    previous_status: str
    # An agent left a chat another agent goes on with (invited colleagues): it stays open without them.
    left: bool = False


def _agent_leave(conversation: Conversation, user: Any) -> bool:
    """An agent closing a chat that another agent also takes part in (an invited colleague) only leaves it: the
    visitor is told and goes on with the other (an assignee's place passes to the longest-standing
    participant). False when they are the only agent in it: their close ends the chat. The caller holds the
    row lock."""
    through = Conversation.participants.through
    participant_ids = list(
        through.objects.filter(conversation_id=conversation.pk).order_by("pk").values_list("user_id", flat=True)
    )
    others = [user_id for user_id in participant_ids if user_id != user.pk]
    if conversation.assignee_id == user.pk:
        if not others:
            return False
        conversation.assignee_id = others[0]
        conversation.save(update_fields=["assignee"])
        through.objects.filter(conversation_id=conversation.pk, user_id=others[0]).delete()
    elif conversation.assignee_id is None:
        return False
    through.objects.filter(conversation_id=conversation.pk, user_id=user.pk).delete()
    name = events.agent_public_name(user)
    system_notice_post(
        conversation=conversation, event="agent.left", body=f"{name} left the chat.", event_data={"agent_name": name}
    )
    conversation_updated_publish(conversation, agents_only=False)
    publish_on_commit(
        group=agent_group(conversation.tenant_id, user.pk),
        event=events.conversation_unassigned(conversation.pk, reason="left"),
    )
    return True


@transaction.atomic
def conversation_close(*, actor: Actor, conversation_id: int, disposition_id: int | None = None) -> CloseResult:
    """Closes once (a second close is a no-op); agents must have picked a disposition first."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    previous = conversation.status
    if conversation.status == ConversationStatus.CLOSED:
        return CloseResult(conversation=conversation, closed_now=False, previous_status=previous)
    if not isinstance(actor, AgentActor) and conversation.channel != Channel.WEB:
        raise switched_away(conversation)
    data: dict[str, Any]
    open_now = conversation.status == ConversationStatus.OPEN
    if isinstance(actor, AgentActor) and open_now and _agent_leave(conversation, actor.user):
        return CloseResult(conversation=conversation, closed_now=False, previous_status=previous, left=True)
    if isinstance(actor, AgentActor):
        if disposition_id is not None:
            conversation.disposition = _disposition_for(conversation.tenant_id, disposition_id)
        if conversation.disposition_id is None:
            raise ApplicationError(
                "disposition_required",
                "Pick a status before closing.",
                {"disposition_id": ["Choose a status first."]},
            )
        data = {"by": "agent", "agent_name": events.agent_public_name(actor.user)}
        body = f"{data['agent_name']} closed the chat."
        if conversation.assignee_id == actor.user.pk:
            conversation.assignee = actor.user
    else:
        data = {"by": "visitor"}
        body = "The visitor ended the chat."
    conversation.status = ConversationStatus.CLOSED
    conversation.closed_at = timezone.now()
    conversation.save(update_fields=["status", "closed_at", "disposition"])
    system_notice_post(conversation=conversation, event="conversation.closed", body=body, event_data=data)
    webhook_event_record(
        tenant_id=conversation.tenant_id, type=CONVERSATION_CLOSED, data=conversation_data(conversation)
    )
    conversation_updated_publish(conversation, agents_only=False, current=True)
    return CloseResult(conversation=conversation, closed_now=True, previous_status=previous)


def conversation_abandon(*, tenant_id: int, conversation_id: int) -> Conversation | None:
    """Closes a waiting web chat whose visitor is gone: their lease on `visitor_away_deadline` ran out before an
    agent answered. None when they came back, an agent took it, or it closed meanwhile.

    The lower half of queueing's `queue_abandon`, which also releases the chat's offers and its place in line;
    in the caller's transaction."""
    now = timezone.now()
    conversation = (
        Conversation.objects.select_for_update()
        .filter(
            pk=conversation_id,
            tenant_id=tenant_id,
            channel=Channel.WEB,
            status=ConversationStatus.WAITING,
            assignee__isnull=True,
            visitor_away_deadline__lt=now,
        )
        .first()
    )
    if conversation is None:
        return None
    conversation.status, conversation.closed_at, conversation.visitor_away_deadline = (
        ConversationStatus.CLOSED,
        now,
        None,
    )
    conversation.save(update_fields=["status", "closed_at", "visitor_away_deadline"])
    system_notice_post(
        conversation=conversation,
        event="conversation.closed",
        body="The visitor left before an agent answered.",
        event_data={"by": "system", "reason": "abandoned"},
    )
    webhook_event_record(
        tenant_id=conversation.tenant_id, type=CONVERSATION_CLOSED, data=conversation_data(conversation)
    )
    conversation_updated_publish(conversation, agents_only=False, current=True)
    return conversation


def conversation_channel_move(
    *, conversation: Conversation, channel: str, address: str, notice: str, event_data: dict[str, Any]
) -> Conversation:
    """Moves a live web chat to a provider's channel (SMS, WhatsApp, email) at the customer's `address`: its
    history, assignee and queue stay; a system notice (`conversation.switched`) says where it goes on, and
    everyone watching it gets the new state. One way: a moved conversation never comes back to the web.

    The lower half of channels_switch's `conversation_switch`, which checks the switch is allowed, records it
    and sends the introduction; the caller holds the row lock, in its transaction."""
    if conversation.channel != Channel.WEB or conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("switch_unavailable", "Only a live web chat can move to another channel.", status=409)
    if channel == Channel.WEB or channel not in Channel.values:
        raise ValueError(f"cannot move a conversation to {channel!r}")
    conversation.channel, conversation.channel_address = channel, address
    conversation.visitor_away_deadline = None
    conversation.save(update_fields=["channel", "channel_address", "visitor_away_deadline"])
    system_notice_post(conversation=conversation, event="conversation.switched", body=notice, event_data=event_data)
    conversation_updated_publish(conversation, agents_only=False)
    return conversation


def conversation_channel_return(
    *, conversation: Conversation, widget_id: int, visitor_id: str, notice: str, event_data: dict[str, Any]
) -> Conversation:
    """Brings a conversation back to the web chat, as `visitor_id` of `widget_id`: from SMS, WhatsApp or email, or
    from another browser's web chat. Its history, assignee and queue stay; a system notice (`conversation.switched`)
    says so and everyone watching it gets the new state. The way back exists only for an explicit act of the
    business (an auth code), never for the visitor's own switch button.

    The lower half of channels_switch's `auth_code_redeem`, which checks the code, records the switch and tells
    integrators; the caller holds the row lock, in its transaction."""
    if conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("switch_unavailable", "A closed conversation cannot continue on the web.", status=409)
    conversation.channel, conversation.channel_address = Channel.WEB, ""
    conversation.widget_id, conversation.visitor_id = widget_id, visitor_id
    conversation.visitor_away_deadline = None
    conversation.save(update_fields=["channel", "channel_address", "widget", "visitor_id", "visitor_away_deadline"])
    system_notice_post(conversation=conversation, event="conversation.switched", body=notice, event_data=event_data)
    conversation_updated_publish(conversation, agents_only=False)
    return conversation


def visitor_lease_renew(
    *, tenant_id: int, conversation_id: int, seconds: int | None, waiting_seconds: int | None = None
) -> bool:
    """The visitor is connected: their connection counts as lost only so long from now (a visitor socket renews
    this while it is open, and once more when it closes). `seconds`: dead-connection detection's timeout, for a
    chat an agent has (None: nobody watches an answered chat); `waiting_seconds`: while it still waits for an
    agent (a queued visitor gone this long has left the queue; None: as `seconds`). A chat that is closed or no
    longer on the web is left alone. Returns whether the chat is still watched (False: renewing is pointless)."""
    now = timezone.now()
    web = Conversation.objects.filter(pk=conversation_id, tenant_id=tenant_id, channel=Channel.WEB)
    waiting = waiting_seconds if waiting_seconds is not None else seconds
    if waiting is not None and web.filter(status=ConversationStatus.WAITING).update(
        visitor_away_deadline=now + timedelta(seconds=waiting)
    ):
        return True
    if seconds is None:
        return False
    return bool(
        web.filter(status=ConversationStatus.OPEN).update(visitor_away_deadline=now + timedelta(seconds=seconds))
    )
