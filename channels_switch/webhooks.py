"""Provider webhooks (an interface): Twilio's inbound messages and status callbacks, one URL per connector.

The connector's `webhook_key` in the path names it; the request must carry Twilio's signature made with that
connector's own auth token over the public URL (SITE_URL, right behind a TLS proxy) and the form fields, so
one tenant's URL can never be fed another tenant's traffic. A forged, tampered or unsigned request gets a
403, is logged, and stores nothing. Valid requests are answered at once with an empty TwiML response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseForbidden,
    HttpResponseNotFound,
    QueryDict,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from twilio.request_validator import RequestValidator

from channels_switch.models import ChannelConnector, ConnectorKind, Provider
from channels_switch.providers import ProviderError, email_webhook_view
from channels_switch.sandbox import SIGNATURE_HEADER, sandbox_media_read, sandbox_signature, sandbox_signed
from channels_switch.selectors import connector_for_webhook
from channels_switch.services import delivery_status_update, inbound_accept, inbound_process
from channels_switch.services.email import message_ids
from channels_switch.services.inbound_email import (
    Mail,
    MailFile,
    email_receive,
    email_tracking_receive,
    mail_from_anymail,
)
from channels_switch.services.inbox import inbound_fields
from channels_switch.services.media_links import media_link_attachment
from chat.services import attachment_served_type
from contactcenter.errors import ApplicationError
from contactcenter.jsonhttp import download_response
from contactcenter.secretbox import SecretUnreadable, unseal

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY_BYTES = 64 * 1024  # Twilio's form posts are a few KiB
MAX_EMAIL_BYTES = 40 * 1024 * 1024  # a mail with attachments, as the ESP posts it (their own limits are 25-40 MB)


def _twilio_signed(connector: ChannelConnector, url: str, params: QueryDict, signature: str) -> bool:
    if not signature or not connector.secret_sealed:
        return False
    try:
        token = unseal(connector.secret_sealed)
    except SecretUnreadable:
        logger.error("twilio webhook for connector %s: its auth token cannot be unsealed", connector.pk)
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


TWILIO_HOOKS = ("inbound", "status")


def twilio_hook_answer(
    *, hook: str, key: str, url: str, params: QueryDict, signature: str, client: str
) -> HttpResponse:
    """What Twilio's webhook `hook` ("inbound" or "status") of the connector named by `key` answers to a request
    read already (`url`: the public URL it was posted to). Under daphne the intake (webhook_intake.py) calls it
    on the database thread, without Django's request machinery; the views below, on any other server."""
    connector = connector_for_webhook(key=key, provider=Provider.TWILIO)
    if connector is None:
        return HttpResponseNotFound("No such webhook.")
    if not _twilio_signed(connector, url, params, signature):
        logger.warning("twilio webhook refused: bad or missing signature (connector %s, from %s)", connector.pk, client)
        return HttpResponseForbidden("Bad signature.")
    if hook == "inbound":
        try:  # kept, then processed by a task: the provider is answered at once (services/inbox.py)
            inbound_accept(connector=connector, params={name: str(params.get(name, "")) for name in params})
        except ApplicationError as exc:
            return HttpResponse(exc.message, status=400)
        return _twiml()
    message_sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not message_sid or not status:
        return HttpResponse("MessageSid and MessageStatus are required.", status=400)
    delivery_status_update(
        connector=connector, provider_id=message_sid, status=status, error_code=params.get("ErrorCode", "")
    )
    return HttpResponse(status=204)


def _twilio_request(request: HttpRequest, hook: str, key: str) -> HttpResponse:
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return HttpResponse("Too large.", status=413)
    return twilio_hook_answer(
        hook=hook,
        key=key,
        url=f"{settings.SITE_URL}{request.get_full_path()}",
        params=request.POST,
        signature=request.headers.get("X-Twilio-Signature", ""),
        client=request.META.get("REMOTE_ADDR", "?"),
    )


def _twiml() -> HttpResponse:
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _sandbox_mail(connector: ChannelConnector, params: Mapping[str, str]) -> Mail:
    """A sandbox customer's email in the sandbox's form fields: From, To (the address answered), Subject,
    Body, In-Reply-To, a file the sandbox holds (MediaUrl0), and the sandbox's id of it as its Message-ID."""
    files = []
    for url, content_type in inbound_fields(params).media:
        content = sandbox_media_read(connector, url)
        if content is not None:
            files.append(MailFile(params.get("MediaFilename0", "file"), content_type, content))
    return Mail(
        sender=params.get("From", ""),
        sender_name="",
        recipients=[params.get("To", "")],
        subject=params.get("Subject", "")[:300],
        text=params.get("Body", ""),
        message_id=f"<{params['MessageSid']}@sandbox.switchboard.invalid>",
        referenced=message_ids(params.get("In-Reply-To", "")),
        files=files,
    )


def _receive(connector: ChannelConnector, params: Mapping[str, str]) -> HttpResponse:
    """A sandbox customer's message, in Twilio's form field names, from a request already checked. The sandbox
    page is the customer's phone on this server: its message is kept in the inbox like Twilio's, then processed
    before the page is answered, so that the page can say what became of it."""
    if connector.kind == ConnectorKind.EMAIL:
        if not params.get("MessageSid") or not params.get("From"):
            return HttpResponse("MessageSid and From are required.", status=400)
        try:
            email_receive(connector=connector, mail=_sandbox_mail(connector, params))
        except ApplicationError as exc:
            return HttpResponse(exc.message, status=400)
        return _twiml()
    # A connector turned off sends nothing and is offered to no visitor, but what customers still send to
    # its number is kept: turning a channel off never loses a customer's message.
    try:
        receipt_id = inbound_accept(connector=connector, params=params, trigger=False)
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400)
    if receipt_id is not None:
        inbound_process(receipt_id=receipt_id)
    return _twiml()


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest, key: str) -> HttpResponse:
    """An SMS or WhatsApp message to the connector's number."""
    return _twilio_request(request, "inbound", key)


def sandbox_webhook_url(connector: ChannelConnector) -> str:
    return settings.SITE_URL + reverse("hooks-sandbox-inbound", kwargs={"key": connector.webhook_key})


def sandbox_inbound_checked(
    connector: ChannelConnector, url: str, params: Mapping[str, str], signature: str
) -> HttpResponse:
    """What the sandbox webhook does once its request is read: the signature checked, then the message in."""
    if not sandbox_signed(connector, url, params, signature):
        logger.warning("sandbox webhook refused: bad or missing signature (connector %s)", connector.pk)
        return HttpResponseForbidden("Bad signature.")
    return _receive(connector, params)


@csrf_exempt
@require_POST
def sandbox_inbound(request: HttpRequest, key: str) -> HttpResponse:
    """A reply typed on the sandbox outbox page, sent in the way a provider sends one (signed)."""
    if not settings.SANDBOX_OUTBOX:
        return HttpResponseNotFound("No such webhook.")
    connector = connector_for_webhook(key=key, provider=Provider.SANDBOX)
    if connector is None:
        return HttpResponseNotFound("No such webhook.")
    url = f"{settings.SITE_URL}{request.get_full_path()}"
    return sandbox_inbound_checked(connector, url, request.POST.dict(), request.headers.get(SIGNATURE_HEADER, ""))


def sandbox_reply(connector: ChannelConnector, params: Mapping[str, str]) -> HttpResponse:
    """The sandbox provider sending a customer's reply to the connector's webhook: signed as the sandbox signs,
    then through the webhook's own checks and handling (in-process: the server never calls itself)."""
    url = sandbox_webhook_url(connector)
    return sandbox_inbound_checked(connector, url, params, sandbox_signature(connector, url, params))


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest, key: str) -> HttpResponse:
    """Twilio's status callback for a message the relay sent through this connector."""
    return _twilio_request(request, "status", key)


def _read_whole_json(request: HttpRequest) -> None:
    """A JSON-posting ESP (Postmark, Brevo, Resend …) sends a whole mail, its attachments in base64, as one
    body: read it here up to MAX_EMAIL_BYTES (checked above), past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, which
    guards every other request), so a customer's mail with a photo is not refused and lost. Form posts keep
    Django's limits for their fields (their files are not held in memory)."""
    if request.content_type == "application/json" and not hasattr(request, "_body"):
        request._body = request.read(MAX_EMAIL_BYTES + 1)


def _email_view(request: HttpRequest, key: str, hook: str) -> tuple[ChannelConnector, list[Any]] | HttpResponse:
    """The connector named by `key`, and the events of the ESP's request once Anymail's own checks for that ESP
    (the basic auth of the URL, the ESP's signature with the connector's key) have passed."""
    if int(request.headers.get("Content-Length") or 0) > MAX_EMAIL_BYTES:
        return HttpResponse("Too large.", status=413)
    connector = connector_for_webhook(key=key, provider=Provider.ANYMAIL)
    if connector is None or not connector.esp:
        return HttpResponseNotFound("No such webhook.")
    _read_whole_json(request)
    try:
        view = email_webhook_view(connector, hook)
        view.run_validators(request)
        events = view.parse_events(request)
    except ProviderError as exc:
        logger.error("email webhook for connector %s cannot be checked: %s", connector.pk, exc.message)
        return HttpResponseForbidden("This webhook cannot be checked yet.")
    except AnymailWebhookValidationFailure as exc:
        logger.warning(
            "email webhook refused: %s (connector %s, from %s)", exc, connector.pk, request.META.get("REMOTE_ADDR", "?")
        )
        return HttpResponseForbidden("Bad credentials or signature.")
    except (AnymailError, ValueError, KeyError, TypeError) as exc:
        logger.warning("email webhook for connector %s: unreadable request (%s)", connector.pk, type(exc).__name__)
        return HttpResponse("Malformed webhook.", status=400)
    return connector, events


@csrf_exempt
@require_POST
def email_inbound(request: HttpRequest, key: str) -> HttpResponse:
    """Mail to the connector's inbound address or domain, as its ESP posts it (through Anymail)."""
    checked = _email_view(request, key, "inbound")
    if isinstance(checked, HttpResponse):
        return checked
    connector, events = checked
    for event in events:
        if event.message is None:
            continue
        envelope = getattr(event.message, "envelope_recipient", None) or ""
        try:
            email_receive(
                connector=connector, mail=mail_from_anymail(event.message, envelope), event_id=event.event_id or ""
            )
        except ApplicationError as exc:
            return HttpResponse(exc.message, status=400)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def email_tracking(request: HttpRequest, key: str) -> HttpResponse:
    """The ESP's tracking events (delivered, bounced, opened …) for mail the relay sent through this connector."""
    checked = _email_view(request, key, "tracking")
    if isinstance(checked, HttpResponse):
        return checked
    connector, events = checked
    for event in events:
        reason = event.reject_reason or event.description or ""
        email_tracking_receive(
            connector=connector, message_id=event.message_id or "", event_type=event.event_type or "", reason=reason
        )
    return HttpResponse(status=204)


@require_GET
def media_file(request: HttpRequest, token: str) -> HttpResponseBase:
    """One file of an agent's SMS or WhatsApp message, for the provider to fetch: named by a signed link that
    expires (services.media_links); anything else is a 404."""
    attachment = media_link_attachment(token)
    if attachment is None:
        return HttpResponseNotFound("No such file.")
    return download_response(
        attachment.file, filename=attachment.filename, content_type=attachment_served_type(attachment)
    )
