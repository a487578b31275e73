"""API shapes of channel connectors (the provider secret is written, never read back) and of an agent-started
session's request."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from channels_switch.models import ChannelConnector
from channels_switch.services import SECRET_MAX_CHARS
from contactcenter.models import Contact
from contactcenter.serializers import TenantModelSerializer, TenantPrimaryKeyRelatedField
from queueing.models import Queue


class ChannelConnectorSerializer(TenantModelSerializer[ChannelConnector]):
    queue = TenantPrimaryKeyRelatedField(
        queryset=Queue.objects.all(),
        required=False,
        allow_null=True,
        help_text="The queue new inbound conversations on this channel wait in (null: every agent sees them).",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=SECRET_MAX_CHARS,
        style={"input_type": "password"},
        help_text=(
            "Twilio: the account's auth token; email: the ESP's API key. Stored encrypted and never returned; "
            "omit it (or send it empty) to keep the stored one."
        ),
    )
    has_secret = serializers.BooleanField(read_only=True, help_text="Whether a secret is stored.")

    class Meta:
        model = ChannelConnector
        fields = [
            "id",
            "kind",
            "provider",
            "enabled",
            "from_address",
            "queue",
            "account_sid",
            "messaging_service_sid",
            "esp",
            "inbound_address",
            "secret",
            "has_secret",
            "secret_set_at",
            "created_at",
        ]
        read_only_fields = ["secret_set_at", "created_at"]


class SessionTemplateSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(
        help_text="One of your WhatsApp templates (`enabled`; on Twilio, with its Content SID)."
    )
    variables = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=200, trim_whitespace=False),
        required=False,
        default=dict,
        help_text='The value of each placeholder, `{"1": "Jane", "2": "A-1042"}`: exactly the template\'s, each one '
        "line of at most 200 characters.",
    )


class ConversationStartSerializer(serializers.Serializer[Any]):
    """The body of `POST /api/v1/conversations/`: an agent-started session (seed 003)."""

    connector_id = TenantPrimaryKeyRelatedField(
        queryset=ChannelConnector.objects.all(),
        help_text="The channel connector (`GET /api/v1/channels/`) of kind `sms`, `whatsapp` or `email`, turned on.",
    )
    contact_id = TenantPrimaryKeyRelatedField(
        queryset=Contact.objects.all(),
        required=False,
        allow_null=True,
        help_text="An existing contact. Omit it to use the contact holding `account` on the channel, or to create "
        "one named `contact_name`.",
    )
    contact_name = serializers.CharField(
        required=False, allow_blank=True, max_length=120, help_text="The name of a new contact (default: the account)."
    )
    account = serializers.CharField(
        max_length=254,
        trim_whitespace=False,
        help_text="The customer's address on the channel: for `sms` and `whatsapp` a phone number in international "
        "format with + and the country code (stored E.164); for `email` an email address. Another kind answers 400 "
        "`account_kind` on `account`, saying which kind the channel needs.",
    )
    agent_id = serializers.IntegerField(
        help_text="The user id of the teammate (`GET /api/v1/agents/`) who owns the session: it is assigned to them, "
        "open, and counts against their `max_chats`."
    )
    message = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The agent's first message, relayed to the customer. Refused on WhatsApp (409 "
        "`outside_whatsapp_window`): a new WhatsApp session opens with a `template`.",
    )
    template = SessionTemplateSerializer(
        required=False, allow_null=True, help_text="WhatsApp only: the first message as an approved template."
    )
    client_id = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="Your id for the first message (a UUID); a message with it is stored once in the conversation.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("message", "").strip() and attrs.get("template"):
            raise serializers.ValidationError({"template": ["Send a message or a template, not both."]})
        return attrs


class AuthCodeSerializer(serializers.Serializer[Any]):
    """A new auth code: the only time the code itself is shown."""

    code = serializers.CharField(read_only=True, help_text="Single use; give it to the widget (docs/auth-codes.md).")
    contact_id = serializers.IntegerField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    expires_in_minutes = serializers.IntegerField(read_only=True, help_text="The tenant's auth code lifetime.")


class LinkRequestCreateSerializer(serializers.Serializer[Any]):
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=["whatsapp", "sms", "email"]),
        min_length=1,
        max_length=3,
        help_text="The channels to continue on: a link for each that has an enabled connector.",
    )
    conversation_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="The contact's open conversation the links continue (default: their latest open one).",
    )


class LinkSerializer(serializers.Serializer[Any]):
    channel = serializers.CharField(read_only=True)
    url = serializers.CharField(
        read_only=True, help_text="Opens the customer's app with the code prefilled (wa.me, sms:, mailto:)."
    )
    code = serializers.CharField(read_only=True, help_text="SB-XXXX-XXXX; single use, shown only here.")
    expires_at = serializers.DateTimeField(read_only=True)


class LinkRequestSerializer(serializers.Serializer[Any]):
    contact_id = serializers.IntegerField(read_only=True)
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    links = LinkSerializer(many=True, read_only=True)
    unavailable = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text="Channels asked for without a link, and why."
    )
