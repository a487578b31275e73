"""State changes of agents, one module per concept; the names callers use are re-exported here.

`team` (members with their agent profiles), `statuses` (dispositions and pause reasons), `templates` (canned
templates and their placeholders), `preferences` (an agent's own console reminders), `presence` (sockets,
heartbeats, chosen presence, the sweep; its lower halves, which queueing.services wraps, are imported from
agents.services.presence by queueing only).
"""

from agents.services.preferences import REMINDER_SECONDS_MAX, REMINDER_SECONDS_MIN, agent_reminders_set
from agents.services.presence import SETTABLE_PRESENCE, agent_heartbeat, agent_sockets_sweep, stale_socket_seconds
from agents.services.statuses import (
    active_disposition_list,
    disposition_delete,
    disposition_save,
    pause_reason_delete,
    pause_reason_save,
)
from agents.services.team import (
    MAX_CHATS_LIMIT,
    agent_create,
    agent_invite,
    agent_profile_ensure,
    agent_profile_update,
    agent_update,
    tenant_setup,
)
from agents.services.templates import (
    TEMPLATE_PLACEHOLDERS,
    RenderedTemplate,
    template_data,
    template_delete,
    template_placeholders_check,
    template_render,
    template_save,
)

__all__ = [
    "MAX_CHATS_LIMIT",
    "REMINDER_SECONDS_MAX",
    "REMINDER_SECONDS_MIN",
    "SETTABLE_PRESENCE",
    "TEMPLATE_PLACEHOLDERS",
    "RenderedTemplate",
    "active_disposition_list",
    "agent_create",
    "agent_heartbeat",
    "agent_invite",
    "agent_profile_ensure",
    "agent_profile_update",
    "agent_reminders_set",
    "agent_sockets_sweep",
    "agent_update",
    "disposition_delete",
    "disposition_save",
    "pause_reason_delete",
    "pause_reason_save",
    "stale_socket_seconds",
    "template_data",
    "template_delete",
    "template_placeholders_check",
    "template_render",
    "template_save",
    "tenant_setup",
]
