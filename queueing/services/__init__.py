"""State changes of queueing, one module per concept; the names callers use are re-exported here."""

from queueing.services.presence import (
    OfflineSweep,
    agent_console_close,
    agent_console_open,
    agent_console_ping,
    agent_presence_change,
    agents_offline_sweep,
)
from queueing.services.queues import (
    queue_configure,
    queue_delete,
    queue_member_add,
    queue_member_remove,
    queue_members_set,
    queue_save,
    queue_widgets_set,
    widget_save_routed,
)
from queueing.services.routing import (
    ConversationRequest,
    agent_offers_refresh,
    conversation_accept,
    conversation_end,
    conversation_offer,
    conversation_request,
    conversation_route,
    offer_reject,
    widget_available,
    widget_queue,
)

__all__ = [
    "ConversationRequest",
    "OfflineSweep",
    "agent_console_close",
    "agent_console_open",
    "agent_console_ping",
    "agent_offers_refresh",
    "agent_presence_change",
    "agents_offline_sweep",
    "conversation_accept",
    "conversation_end",
    "conversation_offer",
    "conversation_request",
    "conversation_route",
    "offer_reject",
    "queue_configure",
    "queue_delete",
    "queue_member_add",
    "queue_member_remove",
    "queue_members_set",
    "queue_save",
    "queue_widgets_set",
    "widget_available",
    "widget_queue",
    "widget_save_routed",
]
