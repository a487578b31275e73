"""channels_switch's state changes, by concept: connectors (settings and secrets), the relay (messages out),
inbound (messages in, and the providers' status callbacks), inbox (Twilio's inbound webhooks kept, then
processed), email (reply addresses, headers, threading),
inbound_email (mail in), media (files on SMS and WhatsApp, both ways), switching (which channels a live chat may
move to, and a widget's switching settings), switch (moving a chat there), dead_connection (moving it when the
visitor's connection is lost), whatsapp_templates (a tenant's approved WhatsApp templates, and sending one outside
the 24-hour window), outbound_sessions (a session an agent starts with a customer, or reopens)."""

from channels_switch.services.connectors import (
    SECRET_MAX_CHARS,
    connector_delete,
    connector_save,
    connector_secrets_reseal,
    connector_test_send,
)
from channels_switch.services.dead_connection import dead_connections_sweep
from channels_switch.services.inbound import Inbound, delivery_status_update, inbound_receive
from channels_switch.services.inbox import inbound_accept, inbound_drain, inbound_inbox_sweep, inbound_process
from channels_switch.services.media import inbound_media_fetch, inbound_media_sweep
from channels_switch.services.outbound_sessions import (
    ACCOUNT_NEEDED,
    SessionExists,
    SessionStarted,
    TemplateFirst,
    account_normalise,
    session_reopen,
    session_start,
)
from channels_switch.services.relay import (
    deliveries_drain,
    deliveries_sweep,
    delivery_attempt,
    delivery_create,
)
from channels_switch.services.switch import conversation_switch
from channels_switch.services.switching import (
    ChannelDiagnosis,
    SwitchOption,
    VisitorSwitching,
    address_display,
    switch_diagnostics,
    switch_options,
    visitor_switching,
    widget_switching_save,
)
from channels_switch.services.whatsapp_templates import (
    TemplateSend,
    whatsapp_placeholder_count,
    whatsapp_template_delete,
    whatsapp_template_render,
    whatsapp_template_save,
    whatsapp_template_send,
)

__all__ = [
    "ACCOUNT_NEEDED",
    "SECRET_MAX_CHARS",
    "ChannelDiagnosis",
    "Inbound",
    "SessionExists",
    "SessionStarted",
    "SwitchOption",
    "TemplateFirst",
    "TemplateSend",
    "VisitorSwitching",
    "account_normalise",
    "address_display",
    "connector_delete",
    "connector_save",
    "connector_secrets_reseal",
    "connector_test_send",
    "conversation_switch",
    "dead_connections_sweep",
    "deliveries_drain",
    "deliveries_sweep",
    "delivery_attempt",
    "delivery_create",
    "delivery_status_update",
    "inbound_accept",
    "inbound_drain",
    "inbound_inbox_sweep",
    "inbound_media_fetch",
    "inbound_media_sweep",
    "inbound_process",
    "inbound_receive",
    "session_reopen",
    "session_start",
    "switch_diagnostics",
    "switch_options",
    "visitor_switching",
    "whatsapp_placeholder_count",
    "whatsapp_template_delete",
    "whatsapp_template_render",
    "whatsapp_template_save",
    "whatsapp_template_send",
    "widget_switching_save",
]
