"""API viewset of channel connectors (admins only)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view

from channels_switch.models import ChannelConnector
from channels_switch.serializers import ChannelConnectorSerializer
from channels_switch.services import connector_delete, connector_save
from contactcenter.api import TenantScopedViewSet
from contactcenter.models import Role


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
