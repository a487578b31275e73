"""State changes of chat, one module per concept; the names callers use are re-exported here.

Every conversation operation authorises through chat.selectors.conversation_get_for, writes in one
transaction and announces the change only through publish_on_commit (docs/protocol.md).

Not re-exported: the lower halves that queueing wraps. A chat starts with queueing.services.conversation_request
(starting.conversation_start alone would leave it unrouted and unoffered; likewise
conversation_open_on_channel, wrapped by queueing.services.conversation_request_on_channel) and ends with
conversation_end (state.conversation_close alone would leave its offers pending); tests/test_architecture.py
checks who imports them.
"""

from chat.services.attachments import (
    attachment_original_keep,
    attachment_receive,
    attachment_served_type,
    attachment_upload,
)
from chat.services.hours import widget_display_rules, widget_next_open, widget_open_at
from chat.services.messages import (
    Notice,
    PostResult,
    RateLimited,
    conversation_mark_read,
    message_post,
    message_receive,
    rate_limit_refusal,
    system_notice_post,
    system_notices_post,
    whisper_post,
)
from chat.services.starting import survey_validate
from chat.services.state import (
    CloseResult,
    conversation_mark_important,
    conversation_set_disposition,
    conversation_updated_publish,
    visitor_lease_renew,
)
from chat.services.widgets import widget_delete, widget_save

__all__ = [
    "CloseResult",
    "Notice",
    "PostResult",
    "RateLimited",
    "attachment_original_keep",
    "attachment_receive",
    "attachment_served_type",
    "attachment_upload",
    "conversation_mark_important",
    "conversation_mark_read",
    "conversation_set_disposition",
    "conversation_updated_publish",
    "message_post",
    "message_receive",
    "rate_limit_refusal",
    "survey_validate",
    "system_notice_post",
    "system_notices_post",
    "visitor_lease_renew",
    "whisper_post",
    "widget_delete",
    "widget_display_rules",
    "widget_next_open",
    "widget_open_at",
    "widget_save",
]
