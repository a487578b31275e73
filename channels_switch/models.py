"""Channel connectors: the tenant's email, SMS and WhatsApp accounts that conversations run on."""

from __future__ import annotations

import secrets

from django.db import models

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
    webhook_key = models.CharField(max_length=40, unique=True, default=new_webhook_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="connector_kind_unique")]

    def __str__(self) -> str:
        return f"{self.kind} via {self.provider}"

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_sealed)
