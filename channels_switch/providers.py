"""Talking to the providers of a connector: Twilio (SMS, WhatsApp) through the `twilio` package, email through
the ESP Anymail has a backend for, each with the tenant's own credentials. One shape of answer (`Sent`) and of
failure (`ProviderError`, which says whether trying again may help) for every provider.

Only fixed provider hosts are ever called (api.twilio.com, each ESP's own API): a tenant sets credentials,
never a URL, so nothing here can be pointed at a private address.
"""

from __future__ import annotations

import json
import secrets
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailWarning
from anymail.webhooks.base import AnymailCoreWebhookView
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse
from django.utils.crypto import salted_hmac
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channels_switch.models import ChannelConnector, ConnectorKind, Delivery, Esp, Provider, SandboxMessage
from channels_switch.sandbox import sandbox_media_read
from contactcenter.secretbox import SecretUnreadable, unseal

TIMEOUT_SECONDS = 15

# The keyword each Anymail backend takes its one credential by.
ESP_CREDENTIAL = {
    Esp.BREVO: "api_key",
    Esp.MAILERSEND: "api_token",
    Esp.MAILGUN: "api_key",
    Esp.MANDRILL: "api_key",
    Esp.POSTMARK: "server_token",
    Esp.RESEND: "api_key",
    Esp.SENDGRID: "api_key",
    Esp.SPARKPOST: "api_key",
}

# Twilio error codes a contact center meets, in words an admin or agent can act on.
TWILIO_REASONS = {
    20003: "Twilio refused the account SID and auth token: check both in the Twilio Console.",
    21211: "The number is not a valid phone number.",
    21408: "This Twilio account may not send to that country (Twilio Console → Messaging → Geo permissions).",
    21606: "The sending number cannot send SMS (it is not an SMS-capable Twilio number of this account).",
    21608: "A Twilio trial account sends only to verified numbers.",
    21610: "The recipient has opted out (replied STOP); nothing more can be sent to them.",
    21614: "The number cannot receive SMS (it is not a mobile number).",
    63007: "The WhatsApp sender is not a WhatsApp-enabled Twilio number of this account.",
    63016: "WhatsApp allows free text only within 24 hours of the customer's last message: use a template.",
}


@dataclass(frozen=True)
class OutgoingFile:
    """A file that goes with an outbound email."""

    filename: str
    content_type: str
    content: bytes
    public_url: str = ""  # for Twilio, which fetches a message's files itself (channels_switch.media_urls)


@dataclass(frozen=True)
class Sent:
    """The provider took the message: its id there, its status and, for SMS, how many segments it bills."""

    provider_id: str
    status: str
    segments: int | None = None


class ProviderError(Exception):
    """The provider did not take the message. `retryable`: a timeout, a lost connection, a 5xx or a rate limit
    (trying again later may work); otherwise the provider refused it and trying again would fail the same."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable


def _secret(connector: ChannelConnector) -> str:
    if not connector.secret_sealed:
        raise ProviderError("No credentials are stored for this channel.", code="no_credentials")
    return _unsealed(connector.secret_sealed)


def _unsealed(sealed: str) -> str:
    try:
        return unseal(sealed)
    except SecretUnreadable as exc:
        raise ProviderError(
            "The stored credentials cannot be read with this server's keys (SECRETS_KEYS): enter them again.",
            code="credentials_unreadable",
        ) from exc


def webhook_url(connector: ChannelConnector, hook: str) -> str:
    """The public URL of one of the connector's Twilio webhooks ("inbound", "status")."""
    return settings.SITE_URL + reverse(f"hooks-twilio-{hook}", kwargs={"key": connector.webhook_key})


# One client per account and sealed token in each process: its HTTP session keeps the connection to Twilio alive
# across sends, and the token is unsealed once. A changed token (or base URL) is another key.
_clients: dict[tuple[int, str, str, str], Client] = {}
CLIENTS_KEPT = 256


def twilio_client(connector: ChannelConnector) -> Client:
    key = (connector.pk or 0, connector.account_sid, connector.secret_sealed, settings.TWILIO_API_BASE_URL)
    client = _clients.get(key)
    if client is not None:
        return client
    client = Client(connector.account_sid, _secret(connector), http_client=TwilioHttpClient(timeout=TIMEOUT_SECONDS))
    if settings.TWILIO_API_BASE_URL:  # a loopback fake Twilio (tests, `make bench`): an operator's setting only
        client.api.base_url = settings.TWILIO_API_BASE_URL
    if connector.pk:
        if len(_clients) >= CLIENTS_KEPT:
            _clients.clear()
        _clients[key] = client
    return client


MEDIA_MAX_BYTES = 16 * 1024 * 1024  # WhatsApp's largest (documents); an MMS is at most 5 MB
TWILIO_API = "https://api.twilio.com"


def twilio_media_fetch(connector: ChannelConnector, url: str) -> tuple[bytes, str]:
    """The bytes and type of a file a customer sent (an inbound message's MediaUrlN), fetched with the
    account's credentials. Only Twilio's own API host is ever asked (the URL comes in a webhook, so it is
    checked, never trusted); its redirect to Twilio's media store carries no credentials (requests drops them
    on a change of host)."""
    base = (settings.TWILIO_API_BASE_URL or TWILIO_API).rstrip("/")
    if not url.startswith(base + "/"):
        raise ProviderError("The file's address is not Twilio's.", code="not_twilio")
    try:
        with requests.get(
            url, auth=(connector.account_sid, _secret(connector)), timeout=TIMEOUT_SECONDS, stream=True
        ) as response:
            if response.status_code >= 400:
                retryable = response.status_code >= 500 or response.status_code == 429
                message = f"Twilio answered {response.status_code} for the file."
                raise ProviderError(message, code=str(response.status_code), retryable=retryable)
            content = response.raw.read(MEDIA_MAX_BYTES + 1, decode_content=True)
            content_type = response.headers.get("Content-Type", "")
    except requests.RequestException as exc:
        raise ProviderError("Twilio could not be reached for the file.", code="unreachable", retryable=True) from exc
    if len(content) > MEDIA_MAX_BYTES:
        raise ProviderError(f"The file is larger than {MEDIA_MAX_BYTES // (1024 * 1024)} MB.", code="too_large")
    return content, content_type.split(";")[0].strip()


def provider_media_fetch(connector: ChannelConnector, url: str, content_type: str) -> tuple[bytes, str]:
    """A customer's file from the provider that holds it: Twilio, or the sandbox standing in for it."""
    if connector.provider == Provider.SANDBOX:
        content = sandbox_media_read(connector, url)
        if content is None:
            raise ProviderError("The sandbox holds no such file.", code="no_file")
        return content, content_type
    return twilio_media_fetch(connector, url)


def _twilio_addresses(connector: ChannelConnector, to: str) -> dict[str, str]:
    if connector.kind == ConnectorKind.WHATSAPP:
        return {"to": f"whatsapp:{to}", "from_": f"whatsapp:{connector.from_address}"}
    if connector.messaging_service_sid:
        return {"to": to, "messaging_service_sid": connector.messaging_service_sid}
    return {"to": to, "from_": connector.from_address}


def twilio_send(
    connector: ChannelConnector,
    *,
    to: str,
    body: str,
    status_callback: str | None = None,
    media_urls: Sequence[str] = (),
    content_sid: str = "",
    content_variables: Mapping[str, str] | None = None,
) -> Sent:
    """Sends one SMS or WhatsApp message through the connector's Twilio account; `to` is E.164. `media_urls`:
    public addresses Twilio fetches the message's files from (an MMS, a WhatsApp photo or document). With a
    `content_sid` it is that approved WhatsApp template (Twilio's ContentSid, with ContentVariables as JSON
    {"1": "…"}) instead of the free text `body`, which Twilio renders itself."""
    fields: dict[str, object] = {"body": body, **_twilio_addresses(connector, to)}
    if content_sid:
        del fields["body"]
        fields["content_sid"] = content_sid
        fields["content_variables"] = json.dumps(dict(content_variables or {}), ensure_ascii=False)
    if status_callback:
        fields["status_callback"] = status_callback
    if media_urls:
        fields["media_url"] = list(media_urls)
    try:
        message = twilio_client(connector).messages.create(**fields)
    except TwilioRestException as exc:
        retryable = exc.status >= 500 or exc.status == 429 or exc.code == 20429
        reason = TWILIO_REASONS.get(exc.code or 0) or exc.msg or "Twilio refused the message."
        code = str(exc.code or exc.status)
        raise ProviderError(f"{reason} (Twilio error {exc.code})", code=code, retryable=retryable) from exc
    except requests.RequestException as exc:
        unreachable = f"Twilio could not be reached ({type(exc).__name__})."
        raise ProviderError(unreachable, code="unreachable", retryable=True) from exc
    segments = int(message.num_segments) if message.num_segments not in (None, "") else None
    return Sent(provider_id=message.sid or "", status=str(message.status or "queued"), segments=segments)


def email_connection(connector: ChannelConnector):
    esp = Esp(connector.esp)
    return get_connection(
        f"anymail.backends.{esp.value}.EmailBackend", fail_silently=False, **{ESP_CREDENTIAL[esp]: _secret(connector)}
    )


def email_send(
    connector: ChannelConnector,
    *,
    to: str,
    subject: str,
    body: str,
    headers: dict[str, str] | None = None,
    files: Sequence[OutgoingFile] = (),
) -> Sent:
    """Sends one email through the connector's ESP with the tenant's key. A Reply-To among `headers` goes as
    the message's reply_to (the ESPs take it there, not as a raw header)."""
    headers = dict(headers or {})
    reply_to = headers.pop("Reply-To", "")
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=connector.from_address,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
        headers=headers,
        connection=email_connection(connector),
    )
    for file in files:
        message.attach(file.filename, file.content, file.content_type)
    esp = Esp(connector.esp).label
    try:
        message.send()
    except AnymailAPIError as exc:
        status = getattr(exc, "status_code", None)
        retryable = status is None or status >= 500 or status == 429
        detail = exc.describe_response()
        refused = detail or f"{esp} refused the message."
        raise ProviderError(refused, code=str(status or "unreachable"), retryable=retryable) from exc
    except AnymailError as exc:
        raise ProviderError(f"{esp} refused the message: {exc}", code="refused") from exc
    status = message.anymail_status  # type: ignore[attr-defined]
    return Sent(provider_id=status.message_id or "", status=",".join(sorted(status.status or {"queued"})))


# Each ESP's Anymail webhook views (inbound mail, tracking events), and the keyword its own signature key goes by.
def _anymail_views() -> dict[Esp, tuple[type[AnymailCoreWebhookView], type[AnymailCoreWebhookView]]]:
    from anymail.webhooks import brevo, mailersend, mailgun, mandrill, postmark, resend, sendgrid, sparkpost

    return {
        Esp.BREVO: (brevo.BrevoInboundWebhookView, brevo.BrevoTrackingWebhookView),
        Esp.MAILERSEND: (mailersend.MailerSendInboundWebhookView, mailersend.MailerSendTrackingWebhookView),
        Esp.MAILGUN: (mailgun.MailgunInboundWebhookView, mailgun.MailgunTrackingWebhookView),
        Esp.MANDRILL: (mandrill.MandrillCombinedWebhookView, mandrill.MandrillCombinedWebhookView),
        Esp.POSTMARK: (postmark.PostmarkInboundWebhookView, postmark.PostmarkTrackingWebhookView),
        Esp.RESEND: (resend.ResendInboundWebhookView, resend.ResendTrackingWebhookView),
        Esp.SENDGRID: (sendgrid.SendGridInboundWebhookView, sendgrid.SendGridTrackingWebhookView),
        Esp.SPARKPOST: (sparkpost.SparkPostInboundWebhookView, sparkpost.SparkPostTrackingWebhookView),
    }


ESP_SIGNING_KEYWORD: dict[Esp, dict[str, str]] = {
    Esp.MAILERSEND: {"inbound": "inbound_secret", "tracking": "signing_secret"},
    Esp.MAILGUN: {"inbound": "webhook_signing_key", "tracking": "webhook_signing_key"},
    Esp.MANDRILL: {"inbound": "webhook_key", "tracking": "webhook_key"},
    Esp.RESEND: {"inbound": "inbound_secret", "tracking": "signing_secret"},
    Esp.SENDGRID: {"tracking": "tracking_webhook_verification_key"},
}
# ESPs whose webhooks Anymail cannot check without their signing key (the basic auth alone is not taken).
ESP_SIGNING_REQUIRED = frozenset({Esp.MAILERSEND, Esp.MANDRILL})
EMAIL_HOOKS = ("inbound", "tracking")
BASIC_AUTH_USER = "switchboard"


def email_webhook_password(connector: ChannelConnector) -> str:
    """The password of the connector's email webhooks' basic auth (in the URLs given to the ESP): derived from
    SECRET_KEY and the connector's webhook key, so it is this connector's alone and never stored."""
    return salted_hmac("switchboard.email.webhook", connector.webhook_key, algorithm="sha256").hexdigest()[:32]


def email_webhook_url(connector: ChannelConnector, hook: str) -> str:
    """The public URL to paste into the ESP for the connector's inbound mail or tracking events, with its basic
    auth credentials in it (as Anymail's webhooks expect)."""
    scheme, _, rest = settings.SITE_URL.partition("://")
    path = reverse(f"hooks-email-{hook}", kwargs={"key": connector.webhook_key})
    return f"{scheme}://{BASIC_AUTH_USER}:{email_webhook_password(connector)}@{rest}{path}"


def email_webhook_view(connector: ChannelConnector, hook: str) -> AnymailCoreWebhookView:
    """The ESP's Anymail webhook view for this connector, set up with its own credentials (never the global
    ANYMAIL settings): the basic auth of its URL, the ESP's signing key and, where the ESP's inbound webhook
    fetches the mail through its API, the API key. Raises ProviderError when the ESP's webhooks need a signing
    key the connector lacks, or its stored keys cannot be read."""
    esp = Esp(connector.esp)
    inbound_view, tracking_view = _anymail_views()[esp]
    kwargs: dict[str, object] = {"webhook_secret": f"{BASIC_AUTH_USER}:{email_webhook_password(connector)}"}
    keyword = ESP_SIGNING_KEYWORD.get(esp, {}).get(hook)
    if keyword and connector.webhook_secret_sealed:
        kwargs[keyword] = _unsealed(connector.webhook_secret_sealed)
    elif keyword and esp in ESP_SIGNING_REQUIRED:
        raise ProviderError(f"{esp.label} signs its webhooks: enter its signing key in Settings → Channels.")
    elif esp == Esp.MAILGUN:
        kwargs[keyword or "webhook_signing_key"] = _secret(connector)  # Mailgun's older accounts sign with the key
    if esp in (Esp.BREVO, Esp.RESEND) and hook == "inbound":
        kwargs["api_key"] = _secret(connector)  # their inbound webhook carries an id; the mail is fetched
    if esp == Esp.MANDRILL:
        kwargs["webhook_url"] = email_webhook_url(connector, hook)
    view_class = inbound_view if hook == "inbound" else tracking_view
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnymailWarning)  # SendGrid's "no longer supported by Anymail"
        return view_class(**kwargs)


def test_message_text(connector: ChannelConnector) -> str:
    return (
        f"Test message from your contact center's {ConnectorKind(connector.kind).label} channel. "
        "It works: customers can be reached here."
    )


def send_test_message(connector: ChannelConnector, *, to: str) -> Sent:
    """The settings page's "send a test message": one message to `to` (already normalised) now, through the
    connector's real provider."""
    if connector.provider == Provider.TWILIO:
        return twilio_send(connector, to=to, body=test_message_text(connector))
    if connector.provider == Provider.ANYMAIL:
        return email_send(connector, to=to, subject="Test message", body=test_message_text(connector))
    raise ProviderError("The sandbox sends nothing outside this server.", code="sandbox")


def twilio_lookup(connector: ChannelConnector, *, to: str, body: str, since: datetime) -> Sent | None:
    """The message Twilio holds with this body to `to`, created since `since` (an attempt whose outcome a dead
    worker never recorded); None when Twilio has none. Raises ProviderError when Twilio cannot say."""
    addresses = _twilio_addresses(connector, to)
    filters = {"to": addresses["to"], **({"from_": addresses["from_"]} if "from_" in addresses else {})}
    try:
        recent = twilio_client(connector).messages.list(limit=50, **filters)
    except TwilioException as exc:  # a failed page of a list is a TwilioException, not a TwilioRestException
        raise ProviderError(f"Twilio could not be asked: {exc}", code="lookup_failed", retryable=True) from exc
    except requests.RequestException as exc:
        raise ProviderError("Twilio could not be reached.", code="unreachable", retryable=True) from exc
    for message in recent:
        created = message.date_created
        if message.body == body and (created is None or created >= since - timedelta(minutes=1)):
            return Sent(provider_id=message.sid or "", status=str(message.status or "queued"))
    return None


def sandbox_send(
    connector: ChannelConnector,
    *,
    to: str,
    body: str,
    subject: str = "",
    delivery: Delivery | None = None,
    headers: dict[str, str] | None = None,
    files: Sequence[OutgoingFile] = (),
) -> Sent:
    """The sandbox "sends" by keeping the message in its outbox, where a person can read and answer it (an
    email with its Message-ID and Reply-To, which the answer is threaded by; its files by name)."""
    headers = headers or {}
    stored = SandboxMessage.objects.create(
        tenant_id=connector.tenant_id,
        channel=connector.kind,
        provider_id="SB" + secrets.token_hex(16),
        delivery=delivery,
        from_address=connector.from_address,
        to_address=to,
        subject=subject,
        body=body,
        message_id=headers.get("Message-ID", ""),
        reply_to=headers.get("Reply-To", ""),
        attachment_names=[file.filename for file in files],
    )
    return Sent(provider_id=stored.provider_id, status="delivered")


def sandbox_lookup(delivery: Delivery) -> Sent | None:
    stored = SandboxMessage.objects.filter(tenant_id=delivery.tenant_id, delivery=delivery).first()
    return Sent(provider_id=stored.provider_id, status="delivered") if stored is not None else None


def provider_send(
    delivery: Delivery,
    *,
    body: str,
    subject: str = "",
    headers: dict[str, str] | None = None,
    files: Sequence[OutgoingFile] = (),
) -> Sent:
    """One attempt at sending a delivery through its connector's provider; an email's `subject`, `headers`
    (Message-ID, Reply-To, In-Reply-To, References) and `files` are the caller's (channels_switch.services.email)."""
    connector = delivery.connector
    if connector is None:
        raise ProviderError("The channel was removed.", code="channel_removed")
    if connector.provider == Provider.SANDBOX:
        if connector.kind != ConnectorKind.EMAIL:  # an SMS has no subject or headers
            return sandbox_send(connector, to=delivery.to_address, body=body, delivery=delivery, files=files)
        return sandbox_send(
            connector,
            to=delivery.to_address,
            body=body,
            subject=subject,
            delivery=delivery,
            headers=headers,
            files=files,
        )
    if connector.provider == Provider.TWILIO:
        return twilio_send(
            connector,
            to=delivery.to_address,
            body=body,
            status_callback=webhook_url(connector, "status"),
            media_urls=[file.public_url for file in files if file.public_url],
            content_sid=delivery.content_sid,
            content_variables=delivery.template_variables,
        )
    return email_send(connector, to=delivery.to_address, subject=subject, body=body, headers=headers, files=files)


def provider_lookup(delivery: Delivery, *, body: str) -> Sent | None:
    """What the provider holds of an attempt that was in flight when its worker died; None: nothing (or, for
    email, which has no lookup, not knowable: the resend keeps its Message-ID)."""
    connector = delivery.connector
    if connector is None or delivery.sending_since is None:
        return None
    if connector.provider == Provider.SANDBOX:
        return sandbox_lookup(delivery)
    if connector.provider == Provider.TWILIO:
        return twilio_lookup(connector, to=delivery.to_address, body=body, since=delivery.sending_since)
    return None
