"""API shapes of the core (error body, contacts, identities, API keys) and the tenant-scoped reference field."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models import QuerySet
from django.http import QueryDict
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from contactcenter.models import (
    ApiKey,
    Contact,
    ContactIdentity,
    ContactMerge,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from contactcenter.services.webhooks_out import EVENT_TYPES

_M = TypeVar("_M", bound=models.Model)


class StrictBooleanField(serializers.BooleanField):
    """A real boolean: JSON `true`/`false`; in a form body or a query string (text only) exactly "true"/"false".

    DRF's BooleanField also takes "yes", "on", "1", 0, "False"…; the schema says `boolean`, so this does too.
    """

    default_error_messages = {"invalid": "Must be a boolean: true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if data in ("true", "false") and isinstance(getattr(self.root, "initial_data", None), QueryDict):
            return data == "true"
        self.fail("invalid")


def tenant_unique_fields(model: type[models.Model]) -> list[str]:
    """Fields unique within a tenant: the models' `(tenant, field)` constraints without a condition."""
    out = []
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and constraint.condition is None:
            names = list(constraint.fields)
            if len(names) == 2 and names[0] == "tenant":
                out.append(names[1])
    return out


class TenantModelSerializer(serializers.ModelSerializer[_M]):
    """The API's model serializers: strict booleans, and the tenant-wide uniqueness of a field said in the schema.

    Uniqueness is checked by the service (validated_save), which answers 400 `invalid` on the field; a
    concurrent duplicate that slips past it answers 409 `duplicate` (contactcenter.api.exception_handler).
    """

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: StrictBooleanField,
    }

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        for name in tenant_unique_fields(self.Meta.model):
            field = fields.get(name)
            if field is not None and not field.read_only:
                note = f"Unique in your tenant: one already used answers 400 `invalid` with `fields.{name}`."
                field.help_text = f"{field.help_text} {note}" if field.help_text else note
        return fields


class ErrorBodySerializer(serializers.Serializer[Any]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Built here: a field declared as `fields` would hide Serializer.fields.
        return {
            "code": serializers.CharField(
                help_text="Stable and machine-readable, e.g. `invalid`, `not_found`, `in_use`."
            ),
            "message": serializers.CharField(help_text="For people: the first problem, in a sentence."),
            "fields": serializers.DictField(
                child=serializers.ListField(child=serializers.CharField()),
                help_text="Input field → its messages; empty unless the input was at fault.",
            ),
        }


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Duplicate name",
            value={
                "error": {
                    "code": "invalid",
                    "message": "Queue with this name already exists.",
                    "fields": {"name": ["Queue with this name already exists."]},
                }
            },
            response_only=True,
            status_codes=["400"],
        )
    ]
)
class ErrorSerializer(serializers.Serializer[Any]):
    """Every failure of the API, whatever its status."""

    error = ErrorBodySerializer()


class TenantPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference to a row of the caller's tenant: any other id "does not exist", as in the URL."""

    def __init__(self, *, tenant_field: str = "tenant", **kwargs: Any):
        self.tenant_field = tenant_field
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        assert queryset is not None, "declare the field with a queryset"
        return queryset.filter(**{self.tenant_field: self.context["tenant"]})


class ContactIdentitySerializer(TenantModelSerializer[ContactIdentity]):
    class Meta:
        model = ContactIdentity
        fields = ["id", "kind", "value", "verified", "created_at"]
        read_only_fields = ["verified", "created_at"]
        extra_kwargs = {
            "value": {
                "help_text": "By `kind`: `email` an email address (RFC 5322, stored lower-cased); `phone` and "
                "`whatsapp` a number in international format, + and the country code (stored as E.164, "
                "`^\\+[1-9][0-9]{1,14}$`). Anything else answers 400 (`invalid` or `invalid_phone`) on `value`."
            }
        }


class ContactMergeSerializer(serializers.ModelSerializer[ContactMerge]):
    identities = serializers.JSONField(
        read_only=True, help_text="The merged contact's identities as they were: `kind`, `value`, `verified` each."
    )

    class Meta:
        model = ContactMerge
        fields = ["merged_contact_id", "merged_name", "identities", "conversations_moved", "merged_by", "created_at"]
        read_only_fields = fields


class ContactSerializer(TenantModelSerializer[Contact]):
    identities = ContactIdentitySerializer(many=True, read_only=True)
    merges = ContactMergeSerializer(
        many=True, read_only=True, help_text="Contacts merged into this one, oldest first (`POST .../merge`)."
    )

    class Meta:
        model = Contact
        fields = ["id", "name", "identities", "merges", "created_at", "updated_at"]


class ContactMergeRequestSerializer(serializers.Serializer[Any]):
    merge_contact_id = serializers.IntegerField(
        min_value=1, help_text="The contact merged into this one: its identities and conversations move here, it goes."
    )


class ApiKeySerializer(TenantModelSerializer[ApiKey]):
    prefix = serializers.CharField(read_only=True, help_text="Public part of the key, to tell keys apart.")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["created_by", "last_used_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The key itself: shown in this response only, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]

    def get_key(self, obj: ApiKey) -> str:
        return str(self.context["plaintext"])


# --- outbound webhooks ---------------------------------------------------------------------------------------


class WebhookSubscriptionSerializer(TenantModelSerializer[WebhookSubscription]):
    url = serializers.CharField(
        max_length=2000,
        help_text="Where events are POSTed: https (plain http and private addresses only on test/demo servers). "
        "A URL whose host is or resolves to a private, loopback, link-local or otherwise internal address answers "
        "400 `url_not_allowed` on `url`.",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        required=False,
        help_text="The event types to send; empty or left out: every type (new types included).",
    )
    rotation_expires_at = serializers.DateTimeField(
        source="previous_secret_expires_at",
        read_only=True,
        allow_null=True,  # null unless a rotation's grace period runs: the document says so (Schemathesis found it)
        help_text="After a rotation: until then the previous secret signs too (two signatures per delivery).",
    )

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "rotation_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["disabled_at", "disabled_reason", "failing_since", "created_at", "updated_at"]
        extra_kwargs = {
            "enabled": {
                "required": False,
                "help_text": "false stops deliveries (pending ones are given up, replayable); true turns a "
                "subscription disabled after a day of failures back on.",
            }
        }


class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    secret = serializers.SerializerMethodField(
        help_text="The signing secret (`whsec_` + base64): shown in this response only, never again."
    )

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields = [*WebhookSubscriptionSerializer.Meta.fields, "secret"]

    def get_secret(self, obj: WebhookSubscription) -> str:
        return str(self.context["secret"])


class WebhookAttemptSerializer(serializers.ModelSerializer[WebhookAttempt]):
    response_body = serializers.CharField(read_only=True, help_text="The first 500 bytes of the receiver's answer.")

    class Meta:
        model = WebhookAttempt
        fields = ["at", "status_code", "error", "latency_ms", "response_body"]
        read_only_fields = fields


class WebhookEventSerializer(serializers.ModelSerializer[WebhookEvent]):
    id = serializers.CharField(source="public_id", read_only=True, help_text="Sent as `webhook-id`: deduplicate by it.")

    class Meta:
        model = WebhookEvent
        fields = ["id", "type", "created_at"]
        read_only_fields = fields

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Added here: a field declared as `data` would hide Serializer.data.
        fields = super().get_fields()
        fields["data"] = serializers.JSONField(
            source="payload", read_only=True, help_text="The event's payload: the delivered body's `data`."
        )
        return fields


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    event = WebhookEventSerializer(read_only=True)
    attempt_count = serializers.IntegerField(source="attempts", read_only=True)
    attempts = WebhookAttemptSerializer(source="attempt_rows", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "state",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
            "attempts",
        ]
        read_only_fields = fields
