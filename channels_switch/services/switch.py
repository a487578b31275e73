"""Switching a live web chat to SMS, WhatsApp or email (seed 000): one transaction re-checks that the channel is
offered (`switching.switch_options`), moves the conversation there with its history and assignee, records the
switch (from, to, where, when, by whom) and writes the introduction, the first message on the new channel, which
says who is writing and how to reply. The relay sends it like any reply.

An address typed into a survey proves nothing, so until the customer answers from it (which verifies it,
`inbound.inbound_receive`) the introduction is all it is sent: the relay refuses an agent's further messages with
the reason. One way: a switched conversation never comes back to the web chat.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from channels_switch.models import ChannelConnector, ChannelSwitch, ConnectorKind, Provider, SwitchedBy
from channels_switch.services.switching import address_display, switch_options
from channels_switch.services.whatsapp_templates import (
    TemplateSend,
    whatsapp_placeholder_count,
    whatsapp_template_render,
)
from chat.events import agent_public_name
from chat.models import Conversation, Message
from chat.selectors import AgentActor, VisitorActor, conversation_get_for
from chat.services.messages import introduction_post
from chat.services.state import conversation_channel_move
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.services.webhooks_out import (
    CONVERSATION_SWITCHED,
    conversation_switched_data,
    webhook_event_record,
)

HOW_TO_REPLY = {
    ConnectorKind.SMS: "Reply to this text to write to us.",
    ConnectorKind.WHATSAPP: "Reply to this message to write to us.",
    ConnectorKind.EMAIL: "Reply to this email to write to us.",
}
# How a channel reads inside a sentence ("by SMS", "by email").
IN_A_SENTENCE = {ConnectorKind.SMS: "SMS", ConnectorKind.WHATSAPP: "WhatsApp", ConnectorKind.EMAIL: "email"}


def _introduction(conversation: Conversation, channel: str, by: str, unread: list[Message]) -> str:
    widget = conversation.widget
    who = (widget.title if widget is not None and widget.title else "") or conversation.tenant.name
    if by == SwitchedBy.SYSTEM:
        opening = f"Hello from {who}. We lost touch with you in our website chat, so we are answering here."
    else:
        opening = f"Hello from {who}. Your chat with us on our website continues here."
    lines = [opening]
    if conversation.assignee_id is not None:
        lines.append(f"{agent_public_name(conversation.assignee)} is looking after it.")
    lines.append(HOW_TO_REPLY[ConnectorKind(channel)])
    if unread:
        lines.append("")
        lines.append("Our replies you had not seen yet:")
        for message in unread:
            name = agent_public_name(message.sender_user) if message.sender_user_id is not None else who
            lines.append(f"{name}: {message.body}" if message.body else f"{name} sent a file.")
    if channel != ConnectorKind.EMAIL:
        lines.append("Reply STOP to get no more messages from us.")
    return "\n".join(lines)


def _introduction_template(conversation: Conversation, channel: str) -> tuple[str, TemplateSend] | None:
    """For a Twilio WhatsApp sender, the introduction as its approved template (the rendered text, and what the
    relay sends): {{1}} the contact center's name, {{2}} the agent looking after the chat. None elsewhere."""
    connector = (
        ChannelConnector.objects.for_tenant(conversation.tenant_id)
        .select_related("introduction_template")
        .filter(kind=channel)
        .first()
    )
    if connector is None or channel != ConnectorKind.WHATSAPP or connector.provider != Provider.TWILIO:
        return None
    template = connector.introduction_template
    if template is None:  # switch_options refused this already: a stale connector is refused the same
        raise ApplicationError("switch_unavailable", "WhatsApp has no introduction template.", status=409)
    widget = conversation.widget
    who = (widget.title if widget is not None and widget.title else "") or conversation.tenant.name
    agent = agent_public_name(conversation.assignee) if conversation.assignee_id is not None else "our team"
    values = {"1": who, "2": agent}
    count = whatsapp_placeholder_count(template.body)
    if count > len(values):
        raise ApplicationError("switch_unavailable", "The introduction template takes too many values.", status=409)
    variables = {str(n): values[str(n)] for n in range(1, count + 1)}
    body = whatsapp_template_render(body=template.body, variables=variables)
    return body, TemplateSend(template_id=template.pk, variables=variables, content_sid=template.content_sid)


def _locked(*, conversation_id: int, actor: VisitorActor | AgentActor | None, tenant_id: int) -> Conversation:
    if actor is not None:
        # No `related` here: FOR UPDATE cannot take the nullable side of the widget's outer join.
        conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
        return conversation
    found = (
        Conversation.objects.for_tenant(tenant_id)
        .select_for_update(of=("self",))
        .select_related("widget", "tenant")
        .filter(pk=conversation_id)
        .first()
    )
    if found is None:
        raise NotFound("conversation")
    return found


@transaction.atomic
def conversation_switch(
    *,
    conversation_id: int,
    channel: str,
    actor: VisitorActor | AgentActor | None = None,
    tenant_id: int | None = None,
    unread: list[Message] | None = None,
) -> ChannelSwitch:
    """Moves a live web chat to `channel`, by the visitor or an agent (`actor`), or by the system (no actor,
    `tenant_id` given: dead-connection detection, which passes the agent replies the visitor never saw, to go
    out with the introduction). Refused with the reason when the channel is not offered now."""
    if actor is not None:
        tenant_id = actor.tenant_id
    if tenant_id is None:
        raise ValueError("a switch by the system names its tenant")
    conversation = _locked(conversation_id=conversation_id, actor=actor, tenant_id=tenant_id)
    options = switch_options(conversation=conversation, by_system=actor is None)
    option = next((o for o in options if o.channel == channel), None)
    if option is None:
        raise ApplicationError("invalid", "Unknown channel.", {"channel": [f"One of {', '.join(ConnectorKind)}."]})
    if not option.offered:
        label = ConnectorKind(channel).label
        # A visitor is told plainly; the console's people get the reason they can act on.
        reason = f"{label} is not available for this chat." if isinstance(actor, VisitorActor) else option.reason
        raise ApplicationError("switch_unavailable", reason, status=409)
    by = SwitchedBy.SYSTEM
    if isinstance(actor, VisitorActor):
        by = SwitchedBy.VISITOR
    elif isinstance(actor, AgentActor):
        by = SwitchedBy.AGENT
    from_channel = conversation.channel
    shown = address_display(channel, option.address)
    data = {"from": from_channel, "to": channel, "address": option.address, "by": by.value}
    if isinstance(actor, AgentActor):
        data["agent_name"] = agent_public_name(actor.user)
    conversation_channel_move(
        conversation=conversation,
        channel=channel,
        address=option.address,
        notice=f"We'll continue this conversation by {IN_A_SENTENCE[ConnectorKind(channel)]} at {shown}.",
        event_data=data,
    )
    template = _introduction_template(conversation, channel)
    seqs = [m.seq for m in unread or []]
    relay: TemplateSend | None = None
    if template is None:
        body = _introduction(conversation, channel, by, unread or [])
        told: dict[str, object] = {"switch_by": by.value, "relayed_seqs": seqs}
    else:  # WhatsApp through Twilio opens only with an approved template: unread replies wait for the answer
        body, relay = template
        told = {"switch_by": by.value, "relayed_seqs": [], "held_seqs": seqs}
    introduction = introduction_post(conversation=conversation, body=body, event_data=told, relay=relay)
    return switch_record(
        conversation=conversation,
        from_channel=from_channel,
        address=option.address,
        by=by,
        by_user=actor.user if isinstance(actor, AgentActor) else None,
        introduction=introduction,
    )


def switch_record(
    *,
    conversation: Conversation,
    from_channel: str,
    address: str,
    by: SwitchedBy,
    by_user: Any = None,
    introduction: Message | None = None,
) -> ChannelSwitch:
    """A move the conversation just made (it is on its new channel now): recorded, and told to integrators'
    webhooks (`conversation.switched`), in the caller's transaction."""
    webhook_event_record(
        tenant_id=conversation.tenant_id,
        type=CONVERSATION_SWITCHED,
        data=conversation_switched_data(conversation, from_channel=from_channel),
    )
    return ChannelSwitch.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        from_channel=from_channel,
        to_channel=conversation.channel,
        address=address,
        by=by,
        by_user=by_user,
        introduction=introduction,
    )


def held_replies_relay(*, conversation: Conversation) -> Message | None:
    """Once the customer answered an introduction that could not carry the agent replies they had not seen (a
    WhatsApp template, after a lost connection), those replies go out, once; the caller holds the row lock."""
    introduction = (
        Message.objects.for_tenant(conversation.tenant_id)
        .filter(conversation_id=conversation.pk, event="channel.introduction")
        .order_by("-seq")
        .first()
    )
    held = (introduction.event_data or {}).get("held_seqs") if introduction is not None else None
    if not held or introduction is None:
        return None
    already = Message.objects.for_tenant(conversation.tenant_id).filter(
        conversation_id=conversation.pk, event="channel.held_replies", seq__gt=introduction.seq
    )
    if already.exists():
        return None
    replies = list(
        Message.objects.for_tenant(conversation.tenant_id)
        .filter(conversation_id=conversation.pk, seq__in=held)
        .select_related("sender_user")
        .order_by("seq")
    )
    lines = ["Our replies you had not seen yet:"]
    for message in replies:
        name = agent_public_name(message.sender_user) if message.sender_user_id is not None else "We"
        lines.append(f"{name}: {message.body}" if message.body else f"{name} sent a file.")
    return introduction_post(
        conversation=conversation,
        body="\n".join(lines),
        event_data={"relayed_seqs": [m.seq for m in replies]},
        event="channel.held_replies",
    )


def conversation_switch_linked(*, conversation: Conversation, channel: str, address: str) -> ChannelSwitch:
    """A live web chat goes on at `address` on `channel` because the customer wrote from there with a link
    request's code (services/link_requests.py): the message proves the address, so no introduction is sent and
    the relay writes to it at once. Recorded as the integrator's (or agent's) act that made the link; the caller
    holds the conversation's row lock."""
    from_channel = conversation.channel
    shown = address_display(channel, address)
    conversation_channel_move(
        conversation=conversation,
        channel=channel,
        address=address,
        notice=f"The customer continued this conversation by {IN_A_SENTENCE[ConnectorKind(channel)]} at {shown}.",
        # `via: link`: the web widget keeps showing this chat live (its customer writes from the app now).
        event_data={
            "from": from_channel,
            "to": channel,
            "address": address,
            "by": SwitchedBy.INTEGRATOR.value,
            "via": "link",
        },
    )
    return switch_record(
        conversation=conversation, from_channel=from_channel, address=address, by=SwitchedBy.INTEGRATOR
    )
