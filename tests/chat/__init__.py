"""Tests of chat: live conversations, messages, attachments and the widget/console JSON endpoints."""
