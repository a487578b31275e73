"""API shapes of the core (error body, contacts, identities, API keys) and the tenant-scoped reference field."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from contactcenter.models import ApiKey, Contact, ContactIdentity


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


class ContactIdentitySerializer(serializers.ModelSerializer[ContactIdentity]):
    class Meta:
        model = ContactIdentity
        fields = ["id", "kind", "value", "verified", "created_at"]
        read_only_fields = ["verified", "created_at"]


class ContactSerializer(serializers.ModelSerializer[Contact]):
    identities = ContactIdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Contact
        fields = ["id", "name", "identities", "created_at", "updated_at"]


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
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
