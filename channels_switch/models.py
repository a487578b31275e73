"""Channel connectors: the tenant's email, SMS and WhatsApp accounts that conversations run on."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from chat.models import Conversation, Message, Widget
from contactcenter.models import TenantOwned
from queueing.models import Queue


class ConnectorKind(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class Provider(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox (no provider account needed)"
    TWILIO = "twilio", "Twilio"
    ANYMAIL = "anymail", "Email service provider (Anymail)"


PROVIDERS_FOR_KIND = {
    ConnectorKind.EMAIL: (Provider.SANDBOX, Provider.ANYMAIL),
    ConnectorKind.SMS: (Provider.SANDBOX, Provider.TWILIO),
    ConnectorKind.WHATSAPP: (Provider.SANDBOX, Provider.TWILIO),
}


class Esp(models.TextChoices):
    """Email service providers Anymail sends through with one credential (the connector's secret)."""

    BREVO = "brevo", "Brevo"
    MAILERSEND = "mailersend", "MailerSend"
    MAILGUN = "mailgun", "Mailgun"
    MANDRILL = "mandrill", "Mandrill"
    POSTMARK = "postmark", "Postmark"
    RESEND = "resend", "Resend"
    SENDGRID = "sendgrid", "SendGrid"
    SPARKPOST = "sparkpost", "SparkPost"


def new_webhook_key() -> str:
    return secrets.token_urlsafe(24)


class ChannelConnector(TenantOwned):
    """One per kind and tenant. Its provider secret (a Twilio auth token, an ESP's API key) is stored sealed
    (contactcenter.secretbox) and never shown back; `webhook_key` names this connector in its webhook URLs."""

    kind = models.CharField(max_length=16, choices=ConnectorKind.choices)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.SANDBOX)
    # The address messages go out from: an email address, or an E.164 number (SMS: optional with a messaging
    # service; WhatsApp: the Twilio WhatsApp sender).
    from_address = models.CharField(max_length=254, blank=True)
    enabled = models.BooleanField(default=True)
    # New inbound conversations on this channel wait here (None: routed nowhere, every agent sees them).
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Twilio: the account (AC…, an identifier, not a secret) and, for SMS, a messaging service (MG…).
    account_sid = models.CharField(max_length=34, blank=True)
    messaging_service_sid = models.CharField(max_length=34, blank=True)
    # Email: the ESP Anymail sends through, and the address or domain the ESP receives replies on.
    esp = models.CharField(max_length=16, choices=Esp.choices, blank=True)
    inbound_address = models.CharField(max_length=254, blank=True)
    secret_sealed = models.TextField(blank=True, editable=False)
    secret_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Email: the key the ESP signs its webhooks with (Mailgun's webhook signing key, Mandrill's webhook key,
    # Resend's signing secret, MailerSend's inbound secret), sealed like the secret; none for ESPs that only
    # use the basic auth in the webhook URL.
    webhook_secret_sealed = models.TextField(blank=True, editable=False)
    # WhatsApp through Twilio: the approved template a chat switched here opens with (WhatsApp lets a business
    # write first only with one); {{1}} is the contact center's name, {{2}} the agent looking after the chat.
    introduction_template = models.ForeignKey(
        "WhatsAppTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    webhook_key = models.CharField(max_length=40, unique=True, default=new_webhook_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="connector_kind_unique")]

    def __str__(self) -> str:
        return f"{self.kind} via {self.provider}"

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_sealed)

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_sealed)


class DeliveryState(models.TextChoices):
    """Where the relay stands with one outbound message (the provider's own progress is `provider_status`)."""

    PENDING = "pending", "Waiting for an attempt"  # at next_attempt_at
    SENDING = "sending", "Being sent"  # an attempt in flight since sending_since
    SENT = "sent", "Taken by the provider"
    FAILED = "failed", "Failed"


class Delivery(TenantOwned):
    """One outbound message to a provider: the transactional outbox row, written with the message.

    A Celery task is only the trigger; the sweep re-drives what is due or stuck, so a lost task or a killed
    worker delays a message and never loses or doubles it (a row found mid-send is looked up at the provider
    before it is sent again)."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="delivery")
    connector = models.ForeignKey(ChannelConnector, null=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=16, choices=ConnectorKind.choices)
    to_address = models.CharField(max_length=254)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sending_since = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=64, blank=True)
    # The provider's last word on it (queued, sent, delivered, read, undelivered, failed …), never backwards.
    provider_status = models.CharField(max_length=16, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # A WhatsApp template sent instead of free text (services/whatsapp_templates.py): which one, its variables
    # ({"1": "…"}) and the Content SID Twilio sends it by, as they were when the agent sent it (the message's
    # body is the rendered text); empty for every other message.
    template = models.ForeignKey("WhatsAppTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    template_variables = models.JSONField(default=dict, blank=True)
    content_sid = models.CharField(max_length=34, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["provider_id"], name="delivery_provider_id"),
        ]

    def __str__(self) -> str:
        return f"delivery of message {self.message_id} by {self.channel}: {self.state}"


class SandboxDirection(models.TextChoices):
    OUT = "out", "To the customer"
    IN = "in", "From the customer"


class SandboxMessage(TenantOwned):
    """What the sandbox provider carried: messages it "sent" to customers (the outbox a person reads as the
    customer would) and what that person answered as the customer (sent in through the sandbox webhook)."""

    channel = models.CharField(max_length=16, choices=ConnectorKind.choices)
    direction = models.CharField(max_length=3, choices=SandboxDirection.choices, default=SandboxDirection.OUT)
    provider_id = models.CharField(max_length=64, unique=True)
    # The relay's row it came from (None: a message sent outside the relay), for the reconciling lookup.
    delivery = models.OneToOneField(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    from_address = models.CharField(max_length=254)
    to_address = models.CharField(max_length=254)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField()
    # Email: its Message-ID and the address a reply goes to (Reply-To), as the customer's mail client sees them.
    message_id = models.CharField(max_length=255, blank=True)
    reply_to = models.CharField(max_length=254, blank=True)
    attachment_names = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sandbox {self.channel} to {self.to_address}"


class InboundState(models.TextChoices):
    PENDING = "pending", "Accepted, not yet processed"
    DONE = "done", "Processed"
    FAILED = "failed", "Could not be processed"


class InboundReceipt(TenantOwned):
    """A provider's id of an inbound message, once per connector: a provider retrying a webhook (Twilio does,
    with the same MessageSid) stores nothing twice.

    It is also the inbox of Twilio's inbound webhooks: the webhook stores the receipt *pending*, with the
    provider's form fields, and answers; a task (the trigger) or the sweep (what a lost task left) processes
    it into the conversation, in one transaction with marking it done."""

    connector = models.ForeignKey(ChannelConnector, on_delete=models.CASCADE, related_name="+")
    provider_id = models.CharField(max_length=200)
    message = models.OneToOneField(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=8, choices=InboundState.choices, default=InboundState.DONE)
    fields = models.JSONField(default=dict, blank=True)  # the webhook's form fields, until processed
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    # Email: the mail's own Message-ID and Subject, which replies to it are threaded by and answer to.
    email_message_id = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "provider_id"], name="inbound_receipt_unique"),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "email_message_id"],
                name="inbound_email_message_id",
                condition=~models.Q(email_message_id=""),
            ),
            models.Index(
                fields=["next_attempt_at"], name="inbound_pending", condition=models.Q(state=InboundState.PENDING)
            ),
        ]

    def __str__(self) -> str:
        return f"inbound {self.provider_id}"


class WidgetSwitching(TenantOwned):
    """A widget's channel switching: whether its visitors see the switch button, and the channels it offers,
    in the order they see them."""

    widget = models.OneToOneField(Widget, on_delete=models.CASCADE, related_name="+")
    show_button = models.BooleanField(default=False)
    channels = models.JSONField(default=list, blank=True)  # ConnectorKind values, in the visitor's order
    # Dead-connection detection: a chat whose visitor has been gone this long with a reply unread moves by itself
    # to the first of `channels` the visitor can be reached on.
    dead_connection = models.BooleanField(default=False)
    dead_connection_seconds = models.PositiveIntegerField(default=120)

    def __str__(self) -> str:
        return f"switching of widget {self.widget_id}"


class SwitchedBy(models.TextChoices):
    VISITOR = "visitor", "the visitor"
    AGENT = "agent", "an agent"
    SYSTEM = "system", "Switchboard (the visitor's connection was lost)"
    # An auth code redeemed in the widget (services/auth_codes.py): created by an integrator's API key or an agent.
    INTEGRATOR = "integrator", "an integrator"


# Where a switch may lead: a provider's channel, or back to the web chat (only through an auth code).
SWITCH_TO_CHOICES = [*ConnectorKind.choices, ("web", "Web chat")]


class ChannelSwitch(TenantOwned):
    """A conversation's move from the web chat to SMS, WhatsApp or email (or back to the web, through an auth code):
    from, to, where, when and by whom, and the introduction that was the first message sent there."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    from_channel = models.CharField(max_length=16)
    to_channel = models.CharField(max_length=16, choices=SWITCH_TO_CHOICES)
    address = models.CharField(max_length=254)
    by = models.CharField(max_length=16, choices=SwitchedBy.choices)
    by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    introduction = models.OneToOneField(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "conversation"])]

    def __str__(self) -> str:
        return f"conversation {self.conversation_id}: {self.from_channel} → {self.to_channel}"


class MediaState(models.TextChoices):
    PENDING = "pending", "Waiting to be fetched"
    FETCHING = "fetching", "Being fetched"
    DONE = "done", "Kept"
    FAILED = "failed", "Not kept"


class InboundMedia(TenantOwned):
    """A file (photo, voice note, document) a customer sent by MMS or WhatsApp: the provider holds it at `url`
    until it is fetched and kept as an attachment of its own message in the conversation. Written with the
    inbound message; a task fetches it and the sweep re-drives what a lost task or a dead worker left."""

    connector = models.ForeignKey(ChannelConnector, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    provider_id = models.CharField(max_length=64)  # the message's (MessageSid); with `index`, this file's id
    index = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=500)
    content_type = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=16, choices=MediaState.choices, default=MediaState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    fetching_since = models.DateTimeField(null=True, blank=True)
    message = models.OneToOneField(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "provider_id", "index"], name="inbound_media_unique"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="inbound_media_due")]

    def __str__(self) -> str:
        return f"media {self.index} of {self.provider_id}: {self.state}"


class WhatsAppTemplate(TenantOwned):
    """A message template a tenant may send on WhatsApp outside the 24-hour customer-service window: its body
    with numbered placeholders {{1}}, {{2}} (what the agent fills in and the conversation's history shows) and,
    for a Twilio WhatsApp sender, the Content SID of the template WhatsApp approved in the tenant's Twilio
    account. The sandbox approves every template."""

    name = models.CharField(max_length=80, help_text="As WhatsApp names it: lowercase letters, digits and _.")
    language = models.CharField(max_length=16, default="en", help_text="A WhatsApp language code: en, en_US, pt_BR…")
    body = models.TextField(max_length=1024)
    content_sid = models.CharField(
        "Twilio Content SID",
        max_length=34,
        blank=True,
        help_text="HX followed by 32 characters: the template's SID in Twilio's Content Template Builder, once "
        "WhatsApp approved it. Not needed on the sandbox, which approves every template.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name", "language"], name="whatsapp_template_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"


AUTH_CODE_MINUTES_DEFAULT = 10
AUTH_CODE_MINUTES_MAX = 1440


class ChannelSettings(TenantOwned):
    """A tenant's channel-wide settings (one row per tenant, made on first write; none: the defaults)."""

    auth_code_minutes = models.PositiveIntegerField(
        "Auth code lifetime (minutes)",
        default=AUTH_CODE_MINUTES_DEFAULT,
        help_text="How long a code that signs a customer into the web chat stays valid (1 to 1440 minutes).",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="channel_settings_once_per_tenant")]
        verbose_name_plural = "channel settings"

    def __str__(self) -> str:
        return f"channel settings of tenant {self.tenant_id}"


class AuthCode(TenantOwned):
    """A short-lived, single-use code that signs a visitor of the tenant's web chat in as `contact` (integrators
    create it through the API). Only the code's SHA-256 is stored; redeeming it sets `used_at` by a conditional
    UPDATE, so two redemptions at once cannot both succeed."""

    contact = models.ForeignKey("contactcenter.Contact", on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=200)  # "API key Helpdesk (sb_1234…)" or an agent's name
    created_at = models.DateTimeField(auto_now_add=True)
    # Set by the redemption: the widget it signed in on, and the conversation that continued there (None: none was
    # open, the visitor starts a new one as the contact).
    widget = models.ForeignKey(Widget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["tenant", "contact", "created_at"])]

    def __str__(self) -> str:
        return f"auth code for contact {self.contact_id}"


class LinkRequest(TenantOwned):
    """A link that continues a contact's conversation on a messaging channel (services/link_requests.py): the
    first message that carries its code, from whatever address, links that address to the contact and goes on
    in the conversation. Single use, expiring; only a hash of the code is kept."""

    contact = models.ForeignKey("contactcenter.Contact", on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="link_requests"
    )
    connector = models.ForeignKey(ChannelConnector, on_delete=models.CASCADE, related_name="link_requests")
    code_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_address = models.CharField(max_length=254, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "contact", "created_at"])]

    def __str__(self) -> str:
        return f"link to {self.connector_id} for contact {self.contact_id}"
