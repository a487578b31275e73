"""Which channels a live web chat may move to, and why not: one function, rule by rule (seed 000's Limits and
Troubleshooting), and the same rules read for a widget as a whole, for its Channel Switching tab.

A channel is offered only when the widget's switch button is on, the widget allows the channel, the tenant's
connector for it is set up and on, the conversation is a live web chat, and the visitor gave an address for
it (an email; a valid international phone number for SMS and WhatsApp) that has not opted out.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from django.db import transaction

from channels_switch.models import ChannelConnector, ConnectorKind, Provider, WidgetSwitching
from channels_switch.selectors import widget_switching_for
from channels_switch.services.relay import RECIPIENT_KINDS
from chat.models import Channel, Conversation, ConversationStatus, SurveyFieldKind, Widget
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity, Tenant

SURVEY_KIND = {
    ConnectorKind.EMAIL: SurveyFieldKind.EMAIL,
    ConnectorKind.SMS: SurveyFieldKind.PHONE,
    ConnectorKind.WHATSAPP: SurveyFieldKind.PHONE,
}


@dataclass(frozen=True)
class SwitchOption:
    channel: str
    offered: bool
    reason: str  # why it is not offered, in words an admin can act on ("" when offered)
    address: str  # where the conversation would continue ("" when not offered)


def _in_order(switching: WidgetSwitching | None) -> list[str]:
    allowed = [c for c in (switching.channels if switching else []) if c in ConnectorKind.values]
    return allowed + [c for c in ConnectorKind.values if c not in allowed]


def _connector_problem(connector: ChannelConnector | None, label: str) -> str:
    if connector is None:
        return f"No {label} channel is set up (Settings → Channels)."
    if not connector.enabled:
        return f"The {label} channel is turned off (Settings → Channels)."
    if introduction_template_missing(connector):
        return (
            "WhatsApp lets a business write first only with an approved template: pick the WhatsApp channel's "
            "introduction template (Settings → Channels)."
        )
    return ""


def introduction_template_missing(connector: ChannelConnector) -> bool:
    """A Twilio WhatsApp sender with no usable introduction template cannot open a switched chat."""
    if connector.kind != ConnectorKind.WHATSAPP or connector.provider != Provider.TWILIO:
        return False
    template = connector.introduction_template
    return template is None or not template.enabled or not template.content_sid


def _usable_phone(value: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        return False


def _address(identities: list[ContactIdentity], channel: str) -> tuple[str, str]:
    """(address, problem) of the visitor on `channel`: the first usable identity, verified ones first."""
    label = ConnectorKind(channel).label
    candidates = [i for kind in RECIPIENT_KINDS[ConnectorKind(channel)] for i in identities if i.kind == kind]
    if channel != ConnectorKind.EMAIL:
        candidates = [i for i in candidates if _usable_phone(i.value)]
    if not candidates:
        if channel == ConnectorKind.EMAIL:
            return "", "The visitor gave no email address (add an email field to the pre-chat survey)."
        return "", "The visitor gave no valid phone number (add a phone field to the pre-chat survey)."
    reachable = [i for i in candidates if i.opted_out_at is None]
    if not reachable:
        return "", f"The visitor opted out of {label} messages."
    reachable.sort(key=lambda i: (not i.verified, i.pk))
    return reachable[0].value, ""


def address_display(channel: str, address: str) -> str:
    """An address as a person reads it: a phone number grouped the international way."""
    if channel == ConnectorKind.EMAIL:
        return address
    try:
        return phonenumbers.format_number(
            phonenumbers.parse(address, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
    except phonenumbers.NumberParseException:
        return address


def switch_options(*, conversation: Conversation, by_system: bool = False) -> list[SwitchOption]:
    """Every channel, the widget's order first: offered to this conversation's visitor now, or why not.

    `by_system`: for dead-connection detection, which needs that turned on instead of the switch button."""
    return _options(
        conversation,
        widget_switching_for(tenant_id=conversation.tenant_id, widget_id=conversation.widget_id),
        by_system=by_system,
    )


@dataclass(frozen=True)
class VisitorSwitching:
    offers: list[dict[str, str]]  # what the switch button offers now: channel, its name, the address shown
    lease_seconds: int | None  # dead-connection detection's timeout when it watches this chat, else None


def visitor_switching(*, conversation: Conversation) -> VisitorSwitching:
    """For the visitor's socket: what the switch button offers now, in the widget's order, and whether
    dead-connection detection watches this chat. One read for a widget with neither (most of them)."""
    if conversation.channel != Channel.WEB or conversation.status == ConversationStatus.CLOSED:
        return VisitorSwitching(offers=[], lease_seconds=None)
    switching = widget_switching_for(tenant_id=conversation.tenant_id, widget_id=conversation.widget_id)
    if switching is None or not switching.channels:
        return VisitorSwitching(offers=[], lease_seconds=None)
    lease = switching.dead_connection_seconds if switching.dead_connection else None
    if not switching.show_button:
        return VisitorSwitching(offers=[], lease_seconds=lease)
    offers = [
        {
            "channel": option.channel,
            "label": ConnectorKind(option.channel).label,
            "address": address_display(option.channel, option.address),
        }
        for option in _options(conversation, switching, by_system=False)
        if option.offered
    ]
    return VisitorSwitching(offers=offers, lease_seconds=lease)


def _options(conversation: Conversation, switching: WidgetSwitching | None, *, by_system: bool) -> list[SwitchOption]:
    tenant_id = conversation.tenant_id
    connectors = {
        c.kind: c for c in ChannelConnector.objects.for_tenant(tenant_id).select_related("introduction_template")
    }
    identities = list(ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id=conversation.contact_id))
    options = []
    for channel in _in_order(switching):
        label = ConnectorKind(channel).label
        reason, address = "", ""
        if conversation.channel != Channel.WEB or conversation.widget_id is None:
            reason = "The conversation is not a web chat any more: a switch goes one way."
        elif conversation.status == ConversationStatus.CLOSED:
            reason = "The chat has ended."
        elif switching is None or not (switching.dead_connection if by_system else switching.show_button):
            if by_system:
                reason = "Dead-connection detection is off for this widget."
            else:
                reason = "The channel switch button is off for this widget."
        elif channel not in switching.channels:
            reason = f"{label} is not among this widget's switch channels."
        else:
            reason = _connector_problem(connectors.get(channel), label)
        if not reason:
            address, reason = _address(identities, channel)
        options.append(SwitchOption(channel=channel, offered=not reason, reason=reason, address=address))
    return options


@dataclass(frozen=True)
class ChannelDiagnosis:
    channel: str
    ready: bool  # offered to every visitor who gave the address it needs
    problems: list[str]

    @property
    def label(self) -> str:
        return ConnectorKind(self.channel).label


def switch_diagnostics(*, widget: Widget) -> list[ChannelDiagnosis]:
    """For the Channel Switching tab: per channel, what keeps it from ever being offered on this widget."""
    switching = widget_switching_for(tenant_id=widget.tenant_id, widget_id=widget.pk)
    connectors = {
        c.kind: c for c in ChannelConnector.objects.for_tenant(widget.tenant_id).select_related("introduction_template")
    }
    survey_kinds = {f.get("kind") for f in (widget.survey_fields or [])} if widget.survey_enabled else set()
    diagnoses = []
    for channel in _in_order(switching):
        label = ConnectorKind(channel).label
        problems = []
        if switching is None or not switching.show_button:
            problems.append("The channel switch button is off.")
        if switching is None or channel not in switching.channels:
            problems.append(f"{label} is not picked as a switch channel.")
        connector_problem = _connector_problem(connectors.get(channel), label)
        if connector_problem:
            problems.append(connector_problem)
        if SURVEY_KIND[ConnectorKind(channel)] not in survey_kinds:
            what = "email" if channel == ConnectorKind.EMAIL else "phone"
            problems.append(f"The pre-chat survey has no {what} field, so visitors never give the address.")
        diagnoses.append(ChannelDiagnosis(channel=channel, ready=not problems, problems=problems))
    return diagnoses


DEAD_CONNECTION_SECONDS = (30, 3600)


@transaction.atomic
def widget_switching_save(
    *,
    tenant: Tenant,
    widget: Widget,
    show_button: bool,
    channels: list[str],
    dead_connection: bool = False,
    dead_connection_seconds: int = 120,
) -> WidgetSwitching:
    """A widget's Channel Switching tab: the button on or off, the channels it offers in the visitor's order, and
    dead-connection detection with its timeout."""
    if widget.tenant_id != tenant.pk:
        raise ApplicationError("not_found", "No such widget.", status=404)
    unknown = [c for c in channels if c not in ConnectorKind.values]
    if unknown:
        raise ApplicationError("invalid", "Unknown channel.", {"channels": [f"Unknown channel: {unknown[0]}."]})
    if len(set(channels)) != len(channels):
        raise ApplicationError("invalid", "A channel is listed twice.", {"channels": ["Each channel once."]})
    low, high = DEAD_CONNECTION_SECONDS
    if not low <= dead_connection_seconds <= high:
        message = f"Between {low} and {high} seconds."
        raise ApplicationError("invalid", message, {"dead_connection_seconds": [message]})
    switching, _ = WidgetSwitching.objects.select_for_update().get_or_create(tenant=tenant, widget=widget)
    switching.show_button, switching.channels = show_button, list(channels)
    switching.dead_connection, switching.dead_connection_seconds = dead_connection, dead_connection_seconds
    switching.save(update_fields=["show_button", "channels", "dead_connection", "dead_connection_seconds"])
    return switching
