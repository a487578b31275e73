"""The widget's JSON endpoints (docs/protocol.md §6): config, session start, uploads and attachment downloads."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_switch.services.auth_codes import auth_code_redeem
from chat import events
from chat.models import Attachment, Conversation, Widget
from chat.selectors import (
    VisitorActor,
    attachment_get_for,
    attachment_get_for_visitor_id,
    conversation_moved_by_link,
    visitor_current_conversation,
    visitor_history,
    visitor_moved_conversation,
)
from chat.services import (
    attachment_served_type,
    attachment_upload,
    widget_display_rules,
    widget_next_open,
    widget_open_at,
)
from chat.services.identity import visitor_identify
from chat.tokens import (
    attachment_signature_read,
    visitor_attachment_url,
    visitor_token_issue,
    visitor_token_read,
)
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.jsonhttp import download_response, json_endpoint, read_json
from contactcenter.ratelimit import client_ip
from queueing.services import conversation_request, widget_admission

TOKEN_HEADER = "HTTP_X_VISITOR_TOKEN"


def attachment_response(attachment: Attachment) -> FileResponse:
    return download_response(
        attachment.file, filename=attachment.filename, content_type=attachment_served_type(attachment)
    )


def _widget(public_key: str) -> Widget:
    # The public key is what identifies the tenant here: there is no signed-in user to scope by.
    widget = Widget.objects.filter(public_key=public_key).select_related("tenant").first()
    if widget is None:
        raise NotFound("widget")
    return widget


def _visitor(request: HttpRequest, widget: Widget, *, required: bool = True) -> VisitorActor | None:
    raw = request.META.get(TOKEN_HEADER, "")
    if not raw and not required:
        return None
    token = visitor_token_read(raw)
    if token is None or token.widget_id != widget.pk or token.tenant_id != widget.tenant_id:
        raise ApplicationError("invalid_token", "The visitor token is missing, invalid or expired.", status=401)
    return VisitorActor(tenant_id=token.tenant_id, widget_id=token.widget_id, visitor_id=token.visitor_id)


def _attachment_json(attachment: Attachment, visitor_id: str) -> dict[str, Any]:
    data: dict[str, Any] = dict(events.attachment_data(attachment))
    data["url"] = visitor_attachment_url(attachment_id=attachment.pk, visitor_id=visitor_id)
    return data


@csrf_exempt
@require_http_methods(["GET"])
@json_endpoint
def widget_config(request: HttpRequest, public_key: str) -> HttpResponseBase:
    widget = _widget(public_key)
    now = timezone.now()
    opens_at: str | None = None
    if widget_open_at(widget=widget, now=now):
        admission = widget_admission(widget=widget)
        available, reason = admission.available, admission.reason
    else:
        # Closed: no live chat whoever is online; the offline form says when the team is back.
        available, reason = False, "closed"
        opens = widget_next_open(widget=widget, now=now)
        opens_at = opens.isoformat() if opens is not None else None
    return JsonResponse(
        {
            "protocol_version": events.PROTOCOL_VERSION,
            "widget": {
                "public_key": widget.public_key,
                "title": widget.title,
                "greeting": widget.greeting,
                "accent_color": widget.accent_color,
                "offline_message": widget.offline_message,
                "survey_enabled": widget.survey_enabled,
                "survey_fields": list(widget.survey_fields or []) if widget.survey_enabled else [],
                "max_upload_bytes": widget.max_upload_bytes,
                "allowed_file_types": list(widget.allowed_file_types or []),
                "max_message_chars": settings.MESSAGE_MAX_CHARS,
            },
            "available": available,
            "unavailable_reason": reason,
            "opens_at": opens_at,
            "display": widget_display_rules(widget),
        }
    )


@csrf_exempt
@require_http_methods(["GET"])
@json_endpoint
def widget_session(request: HttpRequest, public_key: str) -> HttpResponseBase:
    widget = _widget(public_key)
    visitor = _visitor(request, widget)
    assert visitor is not None
    conversation = visitor_current_conversation(actor=visitor)
    moved = visitor_moved_conversation(actor=visitor) if conversation is None else None
    return JsonResponse(
        {
            "visitor_id": visitor.visitor_id,
            "conversation": events.visitor_conversation(conversation) if conversation is not None else None,
            # The earlier chat that went on by SMS, WhatsApp or email: the widget says so above a new start, or,
            # when the customer followed a link there, keeps showing it live ("following", protocol 1.21).
            "moved": events.visitor_conversation(moved) if moved is not None else None,
            "following": moved is not None and conversation_moved_by_link(conversation=moved),
        }
    )


@csrf_exempt  # no cookie is involved: the visitor proves itself with the token header, not ambient credentials
@require_http_methods(["POST"])
@json_endpoint
def widget_session_start(request: HttpRequest, public_key: str) -> HttpResponseBase:
    widget = _widget(public_key)
    visitor = _visitor(request, widget, required=False)
    body = read_json(request)
    if visitor is not None:
        current = visitor_current_conversation(actor=visitor)
        if current is not None:
            return _session_response(widget, visitor.visitor_id, current, resumed=True, offline=False, status=200)
    started = conversation_request(
        widget=widget,
        visitor_id=visitor.visitor_id if visitor is not None else None,
        answers=_answers(body),
        message=_optional_text(body, "message") or "",
        client_id=_optional_text(body, "client_id"),
        client_ip=client_ip(request.META),
    )
    # A retried start answers as its first try did: same conversation, a token for the same visitor.
    conversation = started.conversation
    # started_offline too: outside business hours conversation_start keeps the chat as a message by itself.
    offline = started.offline or conversation.started_offline
    return _session_response(widget, conversation.visitor_id, conversation, resumed=False, offline=offline, status=201)


def _signed_in_response(widget: Widget, visitor_id: str, conversation: Conversation | None) -> JsonResponse:
    """A visitor signed in (an auth code, a signed user id): their token, and the conversation that goes on here."""
    return JsonResponse(
        {
            "token": visitor_token_issue(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id=visitor_id),
            "visitor_id": visitor_id,
            "conversation": events.visitor_conversation(conversation) if conversation is not None else None,
            "socket_url": f"/ws/visitor/conversations/{conversation.pk}/" if conversation is not None else None,
        }
    )


@csrf_exempt  # no cookie: the code in the body is the credential
@require_http_methods(["POST"])
@json_endpoint
def widget_auth_code(request: HttpRequest, public_key: str) -> HttpResponseBase:
    """Redeems an auth code (docs/auth-codes.md): a token for a visitor signed in as the code's contact, and the
    conversation that continues here (null: none was open; a start with the token makes one for that contact)."""
    widget = _widget(public_key)
    code = _optional_text(read_json(request), "code") or ""
    redeemed = auth_code_redeem(widget=widget, code=code, client_ip=client_ip(request.META))
    if redeemed.conversation is not None:
        redeemed.conversation.refresh_from_db()
    return _signed_in_response(widget, redeemed.visitor_id, redeemed.conversation)


@csrf_exempt  # no cookie: the signature in the body is the credential
@require_http_methods(["POST"])
@json_endpoint
def widget_identify(request: HttpRequest, public_key: str) -> HttpResponseBase:
    """Signs the visitor in as a user of the customer's site whose id their backend signed
    (docs/identity-verification.md): a token for that user's visitor, and their open web chat of this widget."""
    widget = _widget(public_key)
    body = read_json(request)
    try:
        current = _visitor(request, widget, required=False)
    except ApplicationError:  # an expired or foreign token: this browser is nobody yet
        current = None
    identified = visitor_identify(
        widget=widget,
        user_id=body.get("user_id"),
        signature=body.get("signature"),
        email=body.get("email"),
        phone=body.get("phone"),
        name=body.get("name"),
        current_visitor_id=current.visitor_id if current is not None else None,
        client_ip=client_ip(request.META),
    )
    return _signed_in_response(widget, identified.visitor_id, identified.conversation)


@csrf_exempt
@require_http_methods(["GET"])
@json_endpoint
def widget_history(request: HttpRequest, public_key: str) -> HttpResponseBase:
    """The signed-in visitor's earlier conversations on every channel (their contact's), oldest first."""
    widget = _widget(public_key)
    visitor = _visitor(request, widget)
    assert visitor is not None
    return JsonResponse({"conversations": visitor_history(actor=visitor)})


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    """A text field of a request body; absent or null gives None, anything but text is refused."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApplicationError("invalid", f"`{name}` must be text.", {name: ["Expected text."]})
    return value


def _answers(body: dict[str, Any]) -> dict[str, str]:
    """The pre-chat survey's answers: an object of field key → text (a null answer is no answer)."""
    answers = body.get("answers")
    if answers is None:
        return {}
    if not isinstance(answers, dict):
        raise ApplicationError("invalid", "Answers are an object.", {"answers": ["Expected an object."]})
    wrong = {key: ["Expected text."] for key, value in answers.items() if not isinstance(value, str | None)}
    if wrong:
        raise ApplicationError("invalid", "Each answer is text.", wrong)
    return {key: value for key, value in answers.items() if value is not None}


def _session_response(
    widget: Widget, visitor_id: str, conversation: Any, *, resumed: bool, offline: bool, status: int
) -> JsonResponse:
    conversation.refresh_from_db()
    return JsonResponse(
        {
            # Re-issued on every start: a returning visitor's token lives 30 days from the last chat.
            "token": visitor_token_issue(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id=visitor_id),
            "visitor_id": visitor_id,
            "resumed": resumed,
            "offline": offline,
            "conversation": events.visitor_conversation(conversation),
            "socket_url": f"/ws/visitor/conversations/{conversation.pk}/",
        },
        status=status,
    )


@csrf_exempt
@require_http_methods(["POST"])
@json_endpoint
def widget_upload(request: HttpRequest, public_key: str) -> HttpResponseBase:
    widget = _widget(public_key)
    visitor = _visitor(request, widget)
    assert visitor is not None
    upload = request.FILES.get("file")
    if upload is None:
        raise ApplicationError("invalid", "Send the file in the `file` field.", {"file": ["This field is required."]})
    try:
        conversation_id = int(request.POST.get("conversation_id", ""))
    except ValueError as exc:
        raise ApplicationError(
            "invalid", "conversation_id is required.", {"conversation_id": ["Expected an id."]}
        ) from exc
    attachment = attachment_upload(actor=visitor, conversation_id=conversation_id, upload=upload)
    return JsonResponse({"attachment": _attachment_json(attachment, visitor.visitor_id)}, status=201)


@require_http_methods(["GET"])
@json_endpoint
def widget_attachment(request: HttpRequest, attachment_id: int) -> HttpResponseBase:
    """For the conversation's visitor only: a signed URL (works in <img>) or the token header."""
    signature = request.GET.get("sig")
    if signature:
        claims = attachment_signature_read(signature)
        if claims is None or claims[0] != attachment_id:
            raise ApplicationError("forbidden", "This link is invalid or has expired.", status=403)
        return attachment_response(attachment_get_for_visitor_id(attachment_id=attachment_id, visitor_id=claims[1]))
    token = visitor_token_read(request.META.get(TOKEN_HEADER, ""))
    if token is None:
        raise ApplicationError("forbidden", "This link is invalid or has expired.", status=403)
    visitor = VisitorActor(tenant_id=token.tenant_id, widget_id=token.widget_id, visitor_id=token.visitor_id)
    return attachment_response(attachment_get_for(actor=visitor, attachment_id=attachment_id))
