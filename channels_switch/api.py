"""API of channels_switch: the channel connectors (admins only), and starting a session with a customer on one
(`POST /api/v1/conversations/`)."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from channels_switch.models import ChannelConnector
from channels_switch.serializers import ChannelConnectorSerializer, ConversationStartSerializer
from channels_switch.services import TemplateFirst, connector_delete, connector_save, session_start
from chat.selectors import AgentActor
from contactcenter.api import TenantScopedViewSet
from contactcenter.errors import ApplicationError
from contactcenter.models import Membership, Role, Tenant


@extend_schema_view(
    list=extend_schema(summary="List channel connectors", description="Admins only."),
    retrieve=extend_schema(summary="Get a channel connector"),
    create=extend_schema(
        summary="Create a channel connector",
        description=(
            "One per kind: a second connector of a kind answers 400 on `kind`. `provider` is `sandbox` (no "
            "account needed), `twilio` (SMS, WhatsApp) or `anymail` (email). `from_address` is an email address "
            "(email) or an international phone number, stored as E.164 (SMS, WhatsApp). `secret` (the Twilio "
            "auth token or the ESP's API key) is stored encrypted and is never returned: responses say "
            "`has_secret`."
        ),
        examples=[
            OpenApiExample(
                "SMS through Twilio",
                value={
                    "kind": "sms",
                    "provider": "twilio",
                    "from_address": "+44 20 7946 0958",
                    "account_sid": "AC" + "0123456789abcdef" * 2,
                    "secret": "<auth token>",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Email through Postmark",
                value={
                    "kind": "email",
                    "provider": "anymail",
                    "esp": "postmark",
                    "from_address": "support@example.com",
                    "inbound_address": "replies.example.com",
                    "secret": "<server token>",
                },
                request_only=True,
            ),
        ],
    ),
    update=extend_schema(summary="Replace a channel connector"),
    partial_update=extend_schema(summary="Change a channel connector"),
    destroy=extend_schema(summary="Delete a channel connector"),
)
class ChannelConnectorViewSet(TenantScopedViewSet):
    queryset = ChannelConnector.objects.order_by("kind")
    serializer_class = ChannelConnectorSerializer
    read_role = Role.ADMIN

    save_service = staticmethod(connector_save)
    delete_service = staticmethod(lambda instance: connector_delete(connector=instance))


SESSION_EXISTS_EXAMPLE = {
    "error": {
        "code": "session_exists",
        "message": "There is already an open SMS session with Jane Doe: it opens instead (conversation 42).",
        "fields": {},
        "conversation_id": 42,
    }
}
ACCOUNT_KIND_EXAMPLE = {
    "error": {
        "code": "account_kind",
        "message": "SMS needs a phone number in international format, like +14155550123. An email address cannot "
        "receive it.",
        "fields": {
            "account": [
                "SMS needs a phone number in international format, like +14155550123. An email address cannot "
                "receive it."
            ]
        },
    }
}


class ConversationStartMixin:
    """`POST /api/v1/conversations/`, an agent-started session (seed 003), mixed by the wiring into chat's
    read-only conversations viewset so one path lists and creates (this app's interface never imports chat's)."""

    tenant: Tenant

    @extend_schema(
        summary="Start a session with a customer",
        description=(
            "An agent writes first to a customer on SMS, WhatsApp or email. `connector_id` names the channel "
            "(turned on, else 409 `channel_off`); `account` is the customer's address there: for `sms` and "
            "`whatsapp` a phone number in international format with + and the country code (checked with "
            "libphonenumber, stored E.164), for `email` an email address; the wrong kind answers 400 `account_kind` "
            "on `account` with the kind the channel needs. The contact is `contact_id`, else the contact holding "
            "`account` on the channel, else a new one named `contact_name`; the account is added to it (unverified "
            "until the customer answers from it). 409 `account_taken`: another contact holds the account verified; "
            "409 `contact_address_differs`: the contact's messages on this channel go to another address; 409 "
            "`opted_out`.\n\n"
            "No second open session with the same customer on a channel: 409 `session_exists`, with the open "
            "conversation's id as `error.conversation_id`. The session is assigned to `agent_id` (open, no queue, "
            "no offer; 409 `at_capacity` when they have `max_chats` open conversations). `message` is their first "
            "message, relayed at once (its delivery is recorded with it). WhatsApp takes free text only within 24 "
            "hours of the customer's last message, which a new session has not had: there the first message is a "
            "`template` (else 409 `outside_whatsapp_window`, and nothing is created). A failure creates nothing.\n\n"
            "No `Idempotency-Key`: a retried request finds the session it created and answers 409 "
            "`session_exists` with its id."
        ),
        request=ConversationStartSerializer,
        examples=[
            OpenApiExample(
                "SMS with a first message",
                value={
                    "connector_id": 3,
                    "contact_name": "Jane Doe",
                    "account": "+14155550123",
                    "agent_id": 12,
                    "message": "Hello Jane, this is Acme about your order A-1042.",
                },
                request_only=True,
            ),
            OpenApiExample(
                "WhatsApp with an approved template",
                value={
                    "connector_id": 4,
                    "contact_id": 57,
                    "account": "+447911123456",
                    "agent_id": 12,
                    "template": {"id": 2, "variables": {"1": "Jane", "2": "A-1042"}},
                },
                request_only=True,
            ),
            OpenApiExample(
                "Session started",
                value={
                    "id": 43,
                    "contact": {"id": 57, "name": "Jane Doe"},
                    "widget": None,
                    "visitor_id": "",
                    "channel": "sms",
                    "status": "open",
                    "assignee": 12,
                    "participants": [],
                    "important": False,
                    "disposition": None,
                    "last_seq": 2,
                    "created_at": "2025-01-31T09:30:00Z",
                    "answered_at": None,
                    "closed_at": None,
                    "last_message_at": "2025-01-31T09:30:00Z",
                },
                response_only=True,
                status_codes=["201"],
            ),
            OpenApiExample(
                "Wrong kind of account", value=ACCOUNT_KIND_EXAMPLE, response_only=True, status_codes=["400"]
            ),
            OpenApiExample(
                "A session is open already", value=SESSION_EXISTS_EXAMPLE, response_only=True, status_codes=["409"]
            ),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        viewset = cast(GenericViewSet, self)
        body = ConversationStartSerializer(data=request.data, context=viewset.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        membership = (
            Membership.objects.filter(tenant=self.tenant, user_id=data["agent_id"], user__is_active=True)
            .select_related("user")
            .first()
        )
        if membership is None:
            message = "No such teammate in your tenant."
            raise ApplicationError("invalid", message, {"agent_id": [message]})
        actor = AgentActor(tenant_id=self.tenant.pk, user=membership.user, role=membership.role)
        template = data.get("template")
        contact = data.get("contact_id")
        started = session_start(
            actor=actor,
            connector_id=data["connector_id"].pk,
            contact_id=contact.pk if contact is not None else None,
            contact_name=data.get("contact_name", ""),
            account=data["account"],
            body=data.get("message", ""),
            template=TemplateFirst(template_id=template["id"], variables=template["variables"]) if template else None,
            client_id=data.get("client_id") or None,
        )
        conversation = viewset.get_queryset().get(pk=started.conversation.pk)
        return Response(viewset.get_serializer(conversation).data, status=status.HTTP_201_CREATED)
