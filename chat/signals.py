"""What chat announces to the apps above it, which it may not import (docs/architecture.md, import order).

A receiver runs inside the sender's transaction; anything it publishes goes out through publish_on_commit.
"""

from django.dispatch import Signal

# A waiting conversation's first visitor message with text was stored. Arguments: `message` (chat.Message).
# queueing announces it as `waiting.preview` to the agents of the conversation's queue.
waiting_message_stored = Signal()

# An agent's message (not a private note) was stored in a conversation on a provider's channel (email, SMS,
# WhatsApp). Arguments: `message` (chat.Message, delivery_status pending), `attachments` (list of
# chat.Attachment), `relay` (what the poster asked the relay beyond the text, e.g. channels_switch's WhatsApp
# template; None for a plain message; introductions send none). channels_switch writes its delivery row, in the
# same transaction.
outbound_message_stored = Signal()
