"""Channel connectors: the tenant's email, SMS and WhatsApp accounts that conversations can move to."""

from __future__ import annotations

from django.db import models

from contactcenter.models import TenantOwned


class ConnectorKind(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class Provider(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox (delivers to the server log)"
    TWILIO = "twilio", "Twilio"
    ANYMAIL = "anymail", "Email through Anymail"


PROVIDERS_FOR_KIND = {
    ConnectorKind.EMAIL: {Provider.SANDBOX, Provider.ANYMAIL},
    ConnectorKind.SMS: {Provider.SANDBOX, Provider.TWILIO},
    ConnectorKind.WHATSAPP: {Provider.SANDBOX, Provider.TWILIO},
}


class ChannelConnector(TenantOwned):
    """One per kind and tenant. Provider secrets come from the environment, never from this row."""

    kind = models.CharField(max_length=16, choices=ConnectorKind.choices)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.SANDBOX)
    # The address messages go out from: an email address or an E.164 number.
    from_address = models.CharField(max_length=254)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="connector_kind_unique")]

    def __str__(self) -> str:
        return f"{self.kind} via {self.provider}"
