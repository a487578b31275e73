"""Routes of the console's JSON API, mounted at /console/api/ (docs/protocol.md §7)."""

from django.urls import path

from agents import console_api

urlpatterns = [
    path("inbox", console_api.console_inbox_list, name="console-api-inbox"),
    path("conversations/<int:conversation_id>", console_api.console_conversation_get, name="console-api-conversation"),
    path("conversations/<int:conversation_id>/history", console_api.console_history, name="console-api-history"),
    path("conversations/<int:conversation_id>/uploads", console_api.console_upload, name="console-api-upload"),
    path("attachments/<int:attachment_id>/", console_api.console_attachment, name="console-api-attachment"),
    path(
        "conversations/<int:conversation_id>/channels",
        console_api.console_switch_options,
        name="console-api-switch-options",
    ),
    path("conversations/<int:conversation_id>/links", console_api.console_links, name="console-api-links"),
    path("conversations/<int:conversation_id>/web-link", console_api.console_web_link, name="console-api-web-link"),
    path(
        "conversations/<int:conversation_id>/colleagues", console_api.console_colleagues, name="console-api-colleagues"
    ),
    path("conversations/<int:conversation_id>/whatsapp", console_api.console_whatsapp, name="console-api-whatsapp"),
    path("preferences", console_api.console_preferences, name="console-api-preferences"),
    path("sessions", console_api.console_session_start, name="console-api-session-start"),
    path("sessions/channels", console_api.console_session_channels, name="console-api-session-channels"),
    path("sessions/contacts", console_api.console_session_contacts, name="console-api-session-contacts"),
    path(
        "conversations/<int:conversation_id>/reopen",
        console_api.console_session_reopen,
        name="console-api-session-reopen",
    ),
]
