"""Chat: widgets, conversations, messages with a per-conversation seq, and attachments."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from agents.models import Disposition
from contactcenter.models import Contact, TenantOwned


def new_public_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)


class SurveyFieldKind(models.TextChoices):
    NAME = "name", "Name"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    TEXT = "text", "Text"


DEFAULT_FILE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"]


def default_file_types() -> list[str]:
    return list(DEFAULT_FILE_TYPES)


def default_weekly_hours() -> list[list[list[str]]]:
    """Monday to Friday 09:00 to 17:00, closed at the weekend: index 0 is Monday, 6 Sunday."""
    return [[["09:00", "17:00"]] if weekday < 5 else [] for weekday in range(7)]


def default_survey_fields() -> list[dict[str, object]]:
    return [
        {"key": "name", "label": "Your name", "kind": "name", "required": True},
        {"key": "email", "label": "Email", "kind": "email", "required": False},
    ]


class Widget(TenantOwned):
    name = models.CharField(max_length=80)
    public_key = models.CharField(max_length=40, unique=True, default=new_public_key, editable=False)
    # Origins (scheme://host[:port]) allowed to embed the widget: the iframe's CSP frame-ancestors.
    allowed_origins = models.JSONField(default=list, blank=True)
    title = models.CharField(max_length=80, default="Chat with us")
    greeting = models.CharField(max_length=300, blank=True, default="Hi! How can we help?")
    accent_color = models.CharField(max_length=7, default="#2563eb")
    offline_message = models.CharField(
        max_length=300, default="No one is available right now. Leave a message and we will get back to you."
    )
    # When every agent is busy: visitors wait in the queue (True), or are offered the offline form at once.
    queueing_enabled = models.BooleanField(default=True)
    survey_enabled = models.BooleanField(default=True)
    survey_fields = models.JSONField(default=default_survey_fields, blank=True)
    max_upload_bytes = models.PositiveIntegerField(default=10 * 1024 * 1024)
    allowed_file_types = models.JSONField(default=default_file_types, blank=True)
    # Opened by the extra button in the agent's incoming-chat notification, when set.
    agent_external_url = models.URLField(blank=True)
    # Business hours (chat.services.hours): outside them no live chat is offered, only the offline form. Off:
    # always open. Times and closed dates are wall-clock in `time_zone` (an IANA name); `weekly_hours` holds
    # seven lists (Monday first) of ["HH:MM", "HH:MM"] intervals, sorted and not overlapping ("24:00" ends a day).
    hours_enabled = models.BooleanField(default=False)
    time_zone = models.CharField(max_length=64, default="UTC")
    weekly_hours = models.JSONField(default=default_weekly_hours, blank=True)
    closed_dates = models.JSONField(default=list, blank=True)  # ["YYYY-MM-DD", …], sorted
    # Display rules, applied by loader.js on the customer's page: the launcher appears only where the page's URL
    # contains one of `display_url_contains` (any page when empty) and none of `display_url_excludes`, and
    # only after `display_delay_seconds` on the page. A visitor with a chat in progress always sees it.
    display_url_contains = models.JSONField(default=list, blank=True)
    display_url_excludes = models.JSONField(default=list, blank=True)
    display_delay_seconds = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(600)])
    # Identity verification (chat.services.identity): the secret the customer's backend signs its user ids with,
    # sealed (contactcenter.secretbox), shown once when made; empty: the widget takes no signed user ids.
    identity_secret_sealed = models.TextField(blank=True, editable=False)
    identity_secret_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="widget_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Channel(models.TextChoices):
    WEB = "web", "Web chat"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class ConversationStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"  # needs an agent
    OPEN = "open", "Open"  # an agent has it
    CLOSED = "closed", "Closed"


class Conversation(TenantOwned):
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="conversations")
    widget = models.ForeignKey(Widget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The web visitor this conversation belongs to (from the signed visitor token).
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEB)
    # The customer's address on a provider's channel when the conversation moved there from the web (a switch):
    # replies go to it and the customer's answers from it come back here. Empty otherwise.
    channel_address = models.CharField(max_length=254, blank=True)
    # When the visitor's connection counts as lost (dead-connection detection, channels_switch): each open
    # visitor socket of a widget with detection on keeps pushing it on; null when nobody is watching for that.
    visitor_away_deadline = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ConversationStatus.choices, default=ConversationStatus.WAITING)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    # Agents besides the assignee who take part (invited colleagues).
    participants = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="participating_conversations"
    )
    important = models.BooleanField(default=False)
    disposition = models.ForeignKey(Disposition, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The last seq handed out; the next message takes last_seq + 1 under a row lock.
    last_seq = models.PositiveIntegerField(default=0)
    # "Seen up to seq", one marker per side; only ever moves forward.
    visitor_read_seq = models.PositiveIntegerField(default=0)
    agent_read_seq = models.PositiveIntegerField(default=0)
    # The pre-chat survey as answered: [{"key", "label", "value"}], in the widget's field order.
    survey = models.JSONField(default=list, blank=True)
    # Started as an offline message (no agent of the widget's queue was online).
    started_offline = models.BooleanField(default=False)
    # The client_id of the widget's start request: a retried start finds this conversation instead of
    # making a second one (docs/protocol.md §6).
    start_client_id = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # Grows by one with every published change of the state (status, assignee, channel, important,
    # disposition), under the row's lock, so its order is the commit order across processes: a client keeps
    # the state with the highest version it has seen (docs/protocol.md §4).
    state_version = models.PositiveBigIntegerField(default=0)
    # The message rate limit (settings.MESSAGE_RATE_*): a fixed window per side, counted by the same
    # statement that takes each message's seq, so it costs no round trip of its own.
    visitor_rate_window = models.BigIntegerField(default=0)
    visitor_rate_count = models.PositiveIntegerField(default=0)
    agent_rate_window = models.BigIntegerField(default=0)
    agent_rate_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["visitor_away_deadline"],
                name="conversation_away_deadline",
                condition=models.Q(visitor_away_deadline__isnull=False),
            ),
            models.Index(fields=["tenant", "status", "created_at"]),
            models.Index(fields=["tenant", "contact", "created_at"]),
            models.Index(fields=["tenant", "assignee", "status"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["widget", "start_client_id"],
                condition=Q(start_client_id__isnull=False),
                name="conversation_start_client_id_unique",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Conversation #{self.pk} ({self.channel}, {self.status})"


class SenderKind(models.TextChoices):
    VISITOR = "visitor", "Visitor"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed"


class Message(TenantOwned):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    sender_kind = models.CharField(max_length=16, choices=SenderKind.choices)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Private notes travel only to agents: a visitor sees a gap in seq where one stands.
    is_private = models.BooleanField(default=False)
    body = models.TextField(blank=True)
    # System events carry a code ("agent.joined", "conversation.closed") and small data for rendering.
    event = models.CharField(max_length=40, blank=True)
    event_data = models.JSONField(default=dict, blank=True)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEB)
    delivery_status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.SENT)
    # Why a message to a provider's channel did not go out (the provider's reason, in words); empty otherwise.
    delivery_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
        ]
        ordering = ["conversation", "seq"]

    def __str__(self) -> str:
        return f"#{self.conversation_id}.{self.seq} {self.sender_kind}"


def attachment_path(instance: Attachment, filename: str) -> str:
    # Never the visitor's file name on disk: a random name under the tenant's folder.
    return f"attachments/t{instance.tenant_id}/{secrets.token_hex(16)}"


class Attachment(TenantOwned):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments")
    file = models.FileField(upload_to=attachment_path)
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    uploaded_by_visitor = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.filename

    @property
    def is_image(self) -> bool:
        return self.content_type in {"image/png", "image/jpeg", "image/gif", "image/webp"}
