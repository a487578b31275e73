"""`POST /api/v1/contacts/{id}/merge`: the contacts API's one write that moves conversations, so it lives with
them in chat (contactcenter, below, knows no conversations)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from chat.services.contacts import contact_merge
from contactcenter.api import TenantScopedViewSet
from contactcenter.api_defaults import Principal
from contactcenter.models import Contact, Role, user_display_name
from contactcenter.serializers import ContactMergeRequestSerializer, ContactSerializer


def principal_label(principal: Principal) -> str:
    """Who did it, as a contact's merge history shows it."""
    if principal.api_key is not None:
        return f"API key {principal.api_key.name} ({principal.api_key.prefix}…)"
    assert principal.membership is not None
    return user_display_name(principal.membership.user)


class ContactMergeViewSet(TenantScopedViewSet):
    queryset = Contact.objects.prefetch_related("identities", "merges")
    serializer_class = ContactSerializer
    write_role = Role.AGENT

    @extend_schema(
        operation_id="contacts_merge",
        summary="Merge another contact into this one",
        description=(
            "Agents and admins. Every identity and conversation of `merge_contact_id` moves to this contact, "
            "which keeps them once (an address both hold stays once, verified if either was); the other contact "
            "is deleted, and the merge is recorded in this contact's `merges`. Messages arriving meanwhile for "
            "either contact are neither lost nor stored twice. Integrators subscribed to `contact.merged` are "
            "told. 400 `same_contact` for the contact itself; 404 for an unknown id (or another tenant's)."
        ),
        request=ContactMergeRequestSerializer,
        responses={200: ContactSerializer},
        examples=[
            OpenApiExample("Merge", value={"merge_contact_id": 42}, request_only=True),
            OpenApiExample(
                "Merged",
                value={
                    "id": 7,
                    "name": "Ada Lovelace",
                    "identities": [
                        {
                            "id": 3,
                            "kind": "email",
                            "value": "ada@example.com",
                            "verified": True,
                            "created_at": "2025-01-31T09:30:00Z",
                        },
                        {
                            "id": 9,
                            "kind": "phone",
                            "value": "+442079460958",
                            "verified": True,
                            "created_at": "2025-02-02T10:00:00Z",
                        },
                    ],
                    "merges": [
                        {
                            "merged_contact_id": 42,
                            "merged_name": "+442079460958",
                            "identities": [{"kind": "phone", "value": "+442079460958", "verified": True}],
                            "conversations_moved": 2,
                            "merged_by": "Alice Agent",
                            "created_at": "2025-02-03T08:15:00Z",
                        }
                    ],
                    "created_at": "2025-01-31T09:30:00Z",
                    "updated_at": "2025-02-03T08:15:00Z",
                },
                response_only=True,
            ),
        ],
    )
    def merge(self, request: Request, pk: str | None = None) -> Response:
        contact = self.get_object()
        body = ContactMergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        contact_merge(
            tenant_id=self.tenant.pk,
            contact_id=contact.pk,
            merged_contact_id=body.validated_data["merge_contact_id"],
            merged_by=principal_label(self.principal),
        )
        contact = self.get_queryset().get(pk=contact.pk)
        return Response(
            ContactSerializer(contact, context=self.get_serializer_context()).data, status=status.HTTP_200_OK
        )
