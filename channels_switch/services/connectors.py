"""State changes of channel connectors: their settings, and their provider secret, sealed at rest."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from channels_switch.models import PROVIDERS_FOR_KIND, ChannelConnector, ConnectorKind, Esp, Provider
from channels_switch.providers import Sent, send_test_message
from channels_switch.services.whatsapp_templates import whatsapp_placeholder_count
from contactcenter.errors import ApplicationError
from contactcenter.models import IdentityKind, Tenant
from contactcenter.ratelimit import Rate, ratelimit_hit
from contactcenter.secretbox import reseal, seal
from contactcenter.services import identity_normalise, validated_save
from queueing.models import Queue

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
TWILIO_AUTH_TOKEN = re.compile(r"[0-9a-fA-F]{32}")
DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
SECRET_MAX_CHARS = 512

# What each provider uses beyond kind, provider, enabled and queue; the rest is cleared when it changes.
_PROVIDER_FIELDS: dict[str, set[str]] = {
    Provider.SANDBOX: set(),
    Provider.TWILIO: {"account_sid", "messaging_service_sid"},
    Provider.ANYMAIL: {"esp", "inbound_address"},
}
_OPTIONAL_FIELDS = {"account_sid", "messaging_service_sid", "esp", "inbound_address"}


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError("invalid", message, {field: [message]})


def _address(kind: str, value: str, *, field: str = "from_address") -> str:
    identity_kind = IdentityKind.EMAIL if kind == ConnectorKind.EMAIL else IdentityKind.PHONE
    try:
        return identity_normalise(kind=identity_kind, value=value)
    except ApplicationError as exc:
        raise _invalid(field, exc.fields.get("value", [exc.message])[0]) from exc


def _inbound_address(value: str) -> str:
    """An address (support@in.example.com) or a whole domain (in.example.com) the ESP receives mail on."""
    value = value.strip().lower()
    if "@" in value:
        return _address(ConnectorKind.EMAIL, value, field="inbound_address")
    if not DOMAIN.fullmatch(value):
        raise _invalid("inbound_address", "Enter an email address or a domain, such as replies.example.com.")
    return value


def _check_secret(provider: str, secret: str, *, field: str = "secret") -> str:
    secret = secret.strip()
    if len(secret) > SECRET_MAX_CHARS:
        raise _invalid(field, f"A credential is at most {SECRET_MAX_CHARS} characters.")
    if provider == Provider.TWILIO and not TWILIO_AUTH_TOKEN.fullmatch(secret):
        raise _invalid("secret", "A Twilio auth token is 32 characters, 0-9 and a-f (Twilio Console → Account).")
    return secret


def _check(connector: ChannelConnector, *, secret_given: bool) -> None:
    """The rules of the connector's kind and provider, on the fields as they will be saved."""
    kind, provider = connector.kind, connector.provider
    if kind not in ConnectorKind.values:
        raise _invalid("kind", f"Choose one of {', '.join(ConnectorKind.values)}.")
    if provider not in PROVIDERS_FOR_KIND[ConnectorKind(kind)]:
        raise _invalid("provider", f"A {ConnectorKind(kind).label} connector cannot use {provider}.")
    if connector.from_address:
        connector.from_address = _address(kind, connector.from_address)
    elif not (kind == ConnectorKind.SMS and connector.messaging_service_sid):
        what = "the email address mail is sent from" if kind == ConnectorKind.EMAIL else "the sending number"
        hint = " (or a messaging service)" if kind == ConnectorKind.SMS and provider == Provider.TWILIO else ""
        raise _invalid("from_address", f"Enter {what}{hint}.")
    needs_secret = provider in (Provider.TWILIO, Provider.ANYMAIL)
    if needs_secret and not (secret_given or connector.secret_sealed):
        label = "auth token" if provider == Provider.TWILIO else "API key"
        raise _invalid("secret", f"Enter the {label}.")
    if provider == Provider.TWILIO:
        connector.account_sid = connector.account_sid.strip()
        if not ACCOUNT_SID.fullmatch(connector.account_sid):
            raise _invalid("account_sid", "A Twilio account SID is AC followed by 32 characters, 0-9 and a-f.")
        connector.messaging_service_sid = connector.messaging_service_sid.strip()
        if connector.messaging_service_sid and not MESSAGING_SERVICE_SID.fullmatch(connector.messaging_service_sid):
            raise _invalid("messaging_service_sid", "A messaging service SID is MG followed by 32 characters.")
        if kind == ConnectorKind.WHATSAPP and connector.messaging_service_sid:
            raise _invalid("messaging_service_sid", "WhatsApp sends from its Twilio WhatsApp sender number.")
    if connector.introduction_template_id is not None:
        _check_introduction_template(connector)
    if provider == Provider.ANYMAIL:
        if connector.esp not in Esp.values:
            raise _invalid("esp", f"Choose one of {', '.join(Esp.labels)}.")
        if connector.inbound_address:
            connector.inbound_address = _inbound_address(connector.inbound_address)


INTRODUCTION_VALUES = 2  # {{1}} the contact center's name, {{2}} the agent looking after the chat


def _check_introduction_template(connector: ChannelConnector) -> None:
    template = connector.introduction_template
    if template is None or template.tenant_id != connector.tenant_id:
        raise _invalid("introduction_template", "No such template.")
    if not template.enabled:
        raise _invalid("introduction_template", "That template is turned off.")
    if connector.provider == Provider.TWILIO and not template.content_sid:
        raise _invalid("introduction_template", "That template has no Twilio Content SID yet.")
    if whatsapp_placeholder_count(template.body) > INTRODUCTION_VALUES:
        raise _invalid(
            "introduction_template",
            "An introduction template takes at most {{1}} (your contact center's name) and {{2}} (the agent).",
        )


@transaction.atomic
def connector_save(
    *,
    tenant: Tenant,
    instance: ChannelConnector | None = None,
    secret: str | None = None,
    webhook_secret: str | None = None,
    **fields: Any,
) -> ChannelConnector:
    """Creates or changes the tenant's connector of a kind. `secret` (the Twilio auth token or the ESP's API
    key) and `webhook_secret` (the key an ESP signs its webhooks with) are sealed before they are stored; None
    or empty keeps the stored one. Fields the provider does not use, and secrets of a provider that needs none,
    are cleared, so nothing is kept that is not needed."""
    connector = instance or ChannelConnector(tenant=tenant)
    queue = fields.get("queue", connector.queue if connector.queue_id else None)
    if queue is not None and (not isinstance(queue, Queue) or queue.tenant_id != tenant.pk):
        raise _invalid("queue", "No such queue.")
    for name, value in fields.items():
        setattr(connector, name, "" if value is None and name in _OPTIONAL_FIELDS else value)
    provider = connector.provider
    for name in _OPTIONAL_FIELDS - _PROVIDER_FIELDS.get(provider, set()):
        setattr(connector, name, "")
    if connector.kind != ConnectorKind.WHATSAPP or provider != Provider.TWILIO:
        connector.introduction_template = None
    secret_given = bool(secret and secret.strip())
    _check(connector, secret_given=secret_given)
    if provider != Provider.ANYMAIL:
        connector.webhook_secret_sealed = ""
    elif webhook_secret and webhook_secret.strip():
        connector.webhook_secret_sealed = seal(_check_secret(provider, webhook_secret, field="webhook_secret"))
    if provider == Provider.SANDBOX:
        connector.secret_sealed, connector.secret_set_at = "", None
    elif secret_given:
        assert secret is not None
        connector.secret_sealed = seal(_check_secret(provider, secret))
        connector.secret_set_at = timezone.now()
    return validated_save(connector)


@transaction.atomic
def connector_delete(*, connector: ChannelConnector) -> None:
    connector.delete()


def connector_secrets_reseal() -> int:
    """Seals every tenant's stored secrets again with the newest key (SECRETS_KEYS rotation); returns how many."""
    done = 0
    pending = ChannelConnector.objects.exclude(secret_sealed="").order_by("pk").values_list("pk", flat=True)
    for pk in list(pending):
        with transaction.atomic():
            connector = ChannelConnector.objects.select_for_update().get(pk=pk)
            if connector.secret_sealed:
                connector.secret_sealed = reseal(connector.secret_sealed)
                if connector.webhook_secret_sealed:
                    connector.webhook_secret_sealed = reseal(connector.webhook_secret_sealed)
                connector.save(update_fields=["secret_sealed", "webhook_secret_sealed"])
                done += 1
    return done


TEST_MESSAGE_RATE = Rate(5, 600)  # per connector: a button, not a way to send messages


def connector_test_send(*, connector: ChannelConnector, to: str) -> Sent:
    """Sends the settings page's test message to `to` (a phone number for SMS and WhatsApp, an address for
    email) through the connector's provider now, and returns the provider's answer. Refused in plain words: a
    malformed `to`, a sandbox connector (it has its outbox), too many tests, or the provider's own refusal
    (ProviderError, with its reason)."""
    if connector.provider == Provider.SANDBOX:
        raise ApplicationError("invalid", "The sandbox has no provider to test.", status=400)
    address = _address(connector.kind, to, field="to")
    retry_after = ratelimit_hit(scope="connector-test", key=str(connector.pk), rate=TEST_MESSAGE_RATE)
    if retry_after is not None:
        raise ApplicationError(
            "rate_limited", f"Five test messages in ten minutes: try again in {retry_after} s.", status=429
        )
    return send_test_message(connector, to=address)
