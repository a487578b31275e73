"""API of channels_switch: the channel connectors (admins only), starting a session with a customer on one
(`POST /api/v1/conversations/`), and auth codes (`POST /api/v1/contacts/{id}/auth-codes/`)."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from channels_switch.models import ChannelConnector
from channels_switch.serializers import (
    AuthCodeSerializer,
    ChannelConnectorSerializer,
    ConversationStartSerializer,
    LinkRequestCreateSerializer,
    LinkRequestSerializer,
)
from channels_switch.services import TemplateFirst, connector_delete, connector_save, session_start
from channels_switch.services.auth_codes import auth_code_create, auth_code_minutes
from channels_switch.services.link_requests import link_request_create
from chat.selectors import AgentActor
from contactcenter.api import TenantScopedViewSet
from contactcenter.api_defaults import Principal
from contactcenter.errors import ApplicationError
from contactcenter.models import Contact, Membership, Role, Tenant, user_display_name


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
    resource_example = {
        "id": 3,
        "kind": "sms",
        "provider": "twilio",
        "enabled": True,
        "from_address": "+14155550100",
        "queue": 1,
        "account_sid": "AC0123456789abcdef0123456789abcdef",
        "messaging_service_sid": "",
        "esp": "",
        "inbound_address": "",
        "has_secret": True,
        "secret_set_at": "2025-01-31T09:30:00Z",
        "created_at": "2025-01-31T09:30:00Z",
    }
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
            "Send an `Idempotency-Key` and a retried request gets the first answer again; without one, a retry "
            "finds the session it created and answers 409 `session_exists` with its id."
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


def _created_by(principal: Principal) -> str:
    """Who created a code, as its record keeps it (the same words as a contact's merge history)."""
    if principal.api_key is not None:
        return f"API key {principal.api_key.name} ({principal.api_key.prefix}…)"
    assert principal.membership is not None
    return user_display_name(principal.membership.user)


class ContactAuthCodeViewSet(TenantScopedViewSet):
    """`POST /api/v1/contacts/{id}/auth-codes/`: routed by the wiring next to the contacts API (contactcenter,
    below, knows nothing of the web chat's sign-in)."""

    queryset = Contact.objects.all()
    serializer_class = AuthCodeSerializer
    write_role = Role.AGENT

    @extend_schema(
        operation_id="contacts_auth_codes_create",
        summary="Create an auth code that signs the contact into the web chat",
        description=(
            "Agents and admins. Returns a short-lived, single-use `code`: the customer's page initialises the chat "
            "widget with it (`data-auth-code` on the loader script, or `Switchboard.init({authCode})`), which signs "
            "its visitor in as this contact and shows their conversation history on every channel. A conversation "
            "the contact has open on SMS, WhatsApp or email continues in the web chat, with its history "
            "(`conversation.switched` goes to the integrators' webhooks). The code is valid for the tenant's auth "
            "code lifetime (`expires_in_minutes`, 10 unless an admin changed it in Settings → Channels) and once; "
            "only its SHA-256 is stored, so it cannot be shown again. A widget given an expired, used or unknown "
            "code (another tenant's is unknown) refuses to start with `auth_code_expired`, `auth_code_used` or "
            "`auth_code_unknown` (docs/auth-codes.md). 404 for an unknown contact (or another tenant's)."
        ),
        request=None,
        responses={201: AuthCodeSerializer},
        examples=[
            OpenApiExample(
                "Created",
                value={
                    "code": "q3HkzV0m8yQJx2oZbq7n1WcT5rYdF9aL",
                    "contact_id": 7,
                    "expires_at": "2025-02-03T08:25:00Z",
                    "expires_in_minutes": 10,
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def create_code(self, request: Request, pk: str | None = None) -> Response:
        contact = self.get_object()
        issued = auth_code_create(
            tenant_id=self.tenant.pk, contact_id=contact.pk, created_by=_created_by(self.principal)
        )
        return Response(
            AuthCodeSerializer(
                {
                    "code": issued.code,
                    "contact_id": contact.pk,
                    "expires_at": issued.auth_code.expires_at,
                    "expires_in_minutes": auth_code_minutes(tenant_id=self.tenant.pk),
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )


class ContactLinkRequestViewSet(TenantScopedViewSet):
    """`POST /api/v1/contacts/{id}/link-requests/`: routed by the wiring next to the contacts API."""

    queryset = Contact.objects.all()
    serializer_class = LinkRequestSerializer
    write_role = Role.AGENT

    @extend_schema(
        operation_id="contacts_link_requests_create",
        summary="Links that continue the contact's conversation on WhatsApp, SMS or email",
        description=(
            "Agents and admins. For each channel asked for that has an enabled connector, a link that opens the "
            "customer's app with a message prefilled with a single-use code: WhatsApp (`https://wa.me/…?text=`), "
            "SMS (`sms:…?&body=`), email (`mailto:` the conversation's reply address). When the first message "
            "carrying the code arrives, its address becomes a verified identity of this contact and the "
            "conversation goes on there (a live web chat moves to that channel, with its history, and the web "
            "widget keeps showing it live; `conversation.switched` goes to the integrators' webhooks). Links expire "
            "after `LINK_REQUEST_MINUTES` (a day by default) and work once. Channels without an enabled connector "
            "are listed in `unavailable`. 404 for an unknown contact (or another tenant's)."
        ),
        request=LinkRequestCreateSerializer,
        responses={201: LinkRequestSerializer},
        examples=[
            OpenApiExample("WhatsApp and SMS", value={"channels": ["whatsapp", "sms"]}, request_only=True),
            OpenApiExample(
                "Created",
                value={
                    "contact_id": 7,
                    "conversation_id": 31,
                    "links": [
                        {
                            "channel": "whatsapp",
                            "url": "https://wa.me/14155550100?text=Hello%2C%20I%27d%20like%20to%20continue%20my%20"
                            "conversation%20here.%20My%20code%20is%20SB-7KQ2-M9XD.",
                            "code": "SB-7KQ2-M9XD",
                            "expires_at": "2025-02-04T08:15:00Z",
                        }
                    ],
                    "unavailable": {"sms": "No sms channel is on."},
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def create_links(self, request: Request, pk: str | None = None) -> Response:
        contact = self.get_object()
        body = LinkRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = link_request_create(
            tenant_id=self.tenant.pk,
            contact_id=contact.pk,
            channels=list(body.validated_data["channels"]),
            conversation_id=body.validated_data.get("conversation_id"),
            created_by=_created_by(self.principal),
        )
        data = {
            "contact_id": contact.pk,
            "conversation_id": issued.conversation.pk if issued.conversation is not None else None,
            "links": [vars(link) for link in issued.links],
            "unavailable": issued.unavailable,
        }
        return Response(LinkRequestSerializer(data).data, status=status.HTTP_201_CREATED)
