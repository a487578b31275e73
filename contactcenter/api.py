"""API foundations (tenant-scoped base viewset, the one error shape, its schema) and the core's viewsets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError
from django.db.models import Model, Prefetch, QuerySet
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from contactcenter.api_defaults import NewestFirstCursorPagination, Principal
from contactcenter.errors import ApplicationError
from contactcenter.middleware import STATUS_CODES
from contactcenter.models import (
    ApiKey,
    Contact,
    ContactIdentity,
    Role,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from contactcenter.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeySerializer,
    ContactIdentitySerializer,
    ContactSerializer,
    ErrorSerializer,
    WebhookDeliverySerializer,
    WebhookSubscriptionCreatedSerializer,
    WebhookSubscriptionSerializer,
)
from contactcenter.services import (
    apikey_create,
    apikey_revoke,
    contact_create,
    contact_delete,
    contact_identity_add,
    contact_identity_remove,
    contact_update,
)
from contactcenter.services.idempotency import (
    HEADER as IDEMPOTENCY_HEADER,
)
from contactcenter.services.idempotency import (
    MAX_LENGTH as IDEMPOTENCY_KEY_MAX_LENGTH,
)
from contactcenter.services.idempotency import (
    REPLAYED_HEADER,
    Claimed,
    Stored,
    idempotency_begin,
    idempotency_finish,
    idempotency_release,
    request_hash,
)
from contactcenter.services.webhooks_out import (
    IssuedSubscription,
    webhook_delivery_replay,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_rotate,
    webhook_subscription_update,
)

ERROR_CODES = STATUS_CODES  # one table with the JSON edge (contactcenter.middleware)


def _flatten(detail: Any) -> dict[str, list[str]]:
    """DRF's nested error detail as `{"field.sub.0.key": [messages]}`."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _flatten(value).items():
                    out[f"{key}.{sub}"] = messages
            elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
                # A list of objects (many=True): errors per item, empty for the valid ones.
                for index, item in enumerate(value):
                    for sub, messages in _flatten(item).items():
                        out[f"{key}.{index}.{sub}"] = messages
            elif isinstance(value, list):
                out[key] = [str(v) for v in value]
            else:
                out[key] = [str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(v) for v in detail]}
    return {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every failure as `{"error": {"code", "message", "fields"}}`."""
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response({"error": exc.as_dict()}, status=exc.status)
    if isinstance(exc, IntegrityError) and _is_unique_violation(exc):
        # The services check uniqueness first (400 on the field); only a concurrent twin gets this far.
        set_rollback()
        message = "Another request saved the same unique value at the same time; read it back or change yours."
        return Response({"error": {"code": "duplicate", "message": message, "fields": {}}}, status=409)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else None
    fields = _flatten(detail) if isinstance(exc, exceptions.ValidationError) else {}
    if fields:
        message = next(iter(fields.values()))[0]
    elif isinstance(detail, str):
        message = str(detail)
    else:
        message = response.reason_phrase
    code = ERROR_CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        code = "not_authenticated"
    response.data = {"error": {"code": code, "message": message, "fields": fields}}
    return response


def _plain(data: Any) -> Any:
    """A parsed body as plain JSON-able values (a form's QueryDict as lists, a file as its name and size)."""
    if hasattr(data, "getlist"):
        return {key: [_plain(value) for value in data.getlist(key)] for key in sorted(data.keys())}
    if hasattr(data, "read") and hasattr(data, "size"):
        return {"file": getattr(data, "name", ""), "size": data.size}
    return data


def _is_unique_violation(exc: IntegrityError) -> bool:
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == "23505":  # PostgreSQL's unique_violation
        return True
    return "UNIQUE constraint failed" in str(exc)  # SQLite (embedded mode)


@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Any /api/v1/ path no route matches: the API's error shape instead of Django's HTML page.

    Exempt from CSRF because it changes nothing; a path that exists with a trailing slash says so, since
    the API never redirects (a redirected POST would lose its body).
    """
    message = "No such API endpoint."
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
        except Resolver404:
            pass
        else:
            message = f"No such API endpoint; did you mean {request.path}/ (with the trailing slash)?"
    return JsonResponse({"error": {"code": "not_found", "message": message, "fields": {}}}, status=404)


ERROR_RESPONSES = {
    "400": "Invalid input (body or query parameters): `fields` names each one at fault, `field.sub` for "
    "nested ones. A duplicate (a name already used in your tenant) is reported here too, on its field. "
    "`bad_json`: the body is not JSON; `invalid_text`: a string holds a NUL character or an unpaired UTF-16 "
    "surrogate, which cannot be stored. A body over 2.5 MiB answers 413 `too_large`. Booleans are JSON `true` "
    "or `false` (in a form body or a query string exactly `true` or `false`).",
    "401": "No credentials, or an unknown or revoked API key.",
    "403": "Your role does not allow this: agents read, admins write (API keys act as admins); "
    "a console session also needs its CSRF token for writes.",
    "404": "No such object in your tenant. Another tenant's object answers exactly like a missing one.",
    "409": "Refused because of other rows: `in_use`/`*_in_use` (still referenced), `email_taken` "
    "(the address is already on your team), `identity_taken` (a verified address of another contact), "
    "`duplicate` (a unique value saved by a concurrent request in the same instant).",
    "422": "`idempotency_key_reused`: this `Idempotency-Key` was sent before with another request (another "
    "path or body); use a new key for a new request.",
    "429": "Request budget of this key (or console user) used up: retry after `Retry-After` seconds.",
}
ERROR_RESPONSES_POST_409 = (
    " `idempotency_in_progress`: the first request with this `Idempotency-Key` is still running; retry shortly."
)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH, "pattern": "^[!-~]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes a retry safe: a unique value per request (a UUID), 1 to 255 visible ASCII characters. The first "
        "request's answer (status and body, an error included, a 5xx excepted) is kept 24 hours for your API key "
        "(or console user); a retry with the same key, path and body gets it again, with the header "
        "`Idempotent-Replayed: true`, and does nothing twice. The same key with another path or body answers 422 "
        "`idempotency_key_reused`; while the first request still runs, 409 `idempotency_in_progress`."
    ),
)


class _Replay(Exception):
    """Raised from `initial` to answer with a stored response instead of running the handler."""

    def __init__(self, stored: Stored):
        super().__init__("idempotent replay")
        self.stored = stored


class SwitchboardAutoSchema(AutoSchema):
    """Adds the error responses each operation can give, all in the one error shape, and `Idempotency-Key` to
    every POST."""

    def _get_examples(
        self, serializer: Any, direction: Any, media_type: Any, status_code: Any = None, extras: Any = None
    ) -> dict[str, Any]:
        examples: dict[str, Any] = super()._get_examples(serializer, direction, media_type, status_code, extras)
        if examples:
            return examples
        # The viewset's own resource without an example of its own: show its `resource_example`, as a response
        # (listed in the page envelope for a list) or, with the fields a client writes, as a request.
        resource = getattr(self.view, "resource_example", None)
        own = getattr(self.view, "serializer_class", None)
        single = getattr(serializer, "child", serializer)
        if resource is None or own is None or type(single) is not own:
            return examples
        if direction == "request":
            writable = {name for name, field in single.fields.items() if not field.read_only}
            value = {name: resource[name] for name in resource if name in writable}
            example = OpenApiExample("Request", value=value, request_only=True)
        elif status_code and str(status_code).startswith("2"):
            example = OpenApiExample("Response", value=resource, response_only=True)
        else:
            return examples
        result: dict[str, Any] = super()._get_examples(serializer, direction, media_type, status_code, [example])
        return result

    def get_override_parameters(self) -> list[Any]:
        parameters: list[Any] = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(IDEMPOTENCY_PARAMETER)
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes = ["401", "403", "429"]
        if "{" in self.path:
            codes.append("404")
        paginated = self._is_list_view() and getattr(self.view, "pagination_class", None) is not None
        if self.method in ("POST", "PUT", "PATCH") or self.get_override_parameters() or paginated:
            codes.append("400")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.append("409")
        if self.method == "POST":
            codes.append("422")
        for code in sorted(codes):
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                description = ERROR_RESPONSES[code] + (
                    ERROR_RESPONSES_POST_409 if code == "409" and self.method == "POST" else ""
                )
                responses[code] = {**response, "description": description}
        return responses


class TenantScopedViewSet(viewsets.ModelViewSet):
    """Applies the tenant scope once for every API view: another tenant's object is a plain 404.

    Subclasses set `queryset`; `read_role` and `write_role` set the roles reads and writes need. Writes go
    through services: a subclass whose services have the usual shape sets `save_service` (called with
    `tenant`, `instance` — None on create — and the validated fields; returns the saved object) and
    `delete_service` (called with the instance), each wrapped in `staticmethod`; any other subclass that
    allows writes overrides `perform_create`/`perform_update`/`perform_destroy`.
    """

    read_role: ClassVar[str] = Role.AGENT
    write_role: ClassVar[str] = Role.ADMIN
    # One realistic object of the resource: the OpenAPI example of every operation that has none of its own.
    resource_example: ClassVar[dict[str, Any] | None] = None
    save_service: ClassVar[Callable[..., Model] | None] = None
    delete_service: ClassVar[Callable[..., None] | None] = None
    schema = SwitchboardAutoSchema()
    tenant: Tenant
    principal: Principal
    idempotency_claim: Claimed | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.principal = request.principal  # type: ignore[attr-defined]
        self.tenant = self.principal.tenant
        self.idempotency_claim = None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method == "POST" and key is not None:
            # After authentication, permissions and throttling: a replay is subject to them like the first request.
            outcome = idempotency_begin(
                tenant=self.tenant,
                principal=self._principal_id(),
                key=key,
                request_hash=request_hash(method="POST", path=request.get_full_path(), body=_plain(request.data)),
            )
            if isinstance(outcome, Stored):
                raise _Replay(outcome)
            self.idempotency_claim = outcome

    def _principal_id(self) -> str:
        if self.principal.api_key is not None:
            return f"key:{self.principal.api_key.pk}"
        assert self.principal.membership is not None
        return f"user:{self.principal.membership.user_id}"

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            response = Response(exc.stored.body, status=exc.stored.status_code)
            response[REPLAYED_HEADER] = "true"
            return response
        try:
            return super().handle_exception(exc)
        except BaseException:
            self._idempotency_end(None)  # an unhandled error (a 500): the retry runs again
            raise

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        self._idempotency_end(response)
        return response

    def _idempotency_end(self, response: Any) -> None:
        claim, self.idempotency_claim = self.idempotency_claim, None
        if claim is None:
            return
        if response is None or response.status_code >= 500:
            idempotency_release(tenant=self.tenant, claim=claim)
        else:
            idempotency_finish(
                tenant=self.tenant, claim=claim, status_code=response.status_code, body=getattr(response, "data", None)
            )

    def required_role(self, request: Request) -> str:
        return self.read_role if request.method in permissions.SAFE_METHODS else self.write_role

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        return queryset.filter(tenant=self.tenant)

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if hasattr(self, "tenant"):
            context["tenant"] = self.tenant
        return context

    # ModelViewSet's defaults write with the ORM (serializer.save(), instance.delete()): without a service,
    # refuse them, so a viewset that forgets its service fails loudly instead of skipping the domain's rules.
    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        if self.save_service is None:
            raise NotImplementedError(f"{type(self).__name__} creates through a service")
        serializer.instance = self.save_service(tenant=self.tenant, instance=None, **serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        if self.save_service is None:
            raise NotImplementedError(f"{type(self).__name__} updates through a service")
        serializer.instance = self.save_service(
            tenant=self.tenant, instance=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Model) -> None:
        if self.delete_service is None:
            raise NotImplementedError(f"{type(self).__name__} deletes through a service")
        self.delete_service(instance)


# --- contacts ---------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List contacts",
        description="The tenant's contacts with their identities, newest first. Cursor pagination: follow `next`.",
    ),
    retrieve=extend_schema(summary="Get a contact"),
    create=extend_schema(
        summary="Create a contact",
        description="Agents and admins. Add addresses through `/contacts/{id}/identities/`.",
        examples=[OpenApiExample("New contact", value={"name": "Ada Lovelace"}, request_only=True)],
    ),
    update=extend_schema(summary="Replace a contact"),
    partial_update=extend_schema(summary="Rename a contact"),
    destroy=extend_schema(
        summary="Delete a contact",
        description="Admins only. A contact with conversations is kept for their history (409 `in_use`).",
    ),
)
class ContactViewSet(TenantScopedViewSet):
    queryset = Contact.objects.prefetch_related("identities", "merges").order_by("-created_at", "-pk")
    serializer_class = ContactSerializer
    resource_example = {
        "id": 7,
        "name": "Ada Lovelace",
        "identities": [
            {
                "id": 3,
                "kind": "email",
                "value": "ada@example.com",
                "verified": True,
                "created_at": "2025-01-31T09:30:00Z",
            }
        ],
        "merges": [],
        "created_at": "2025-01-31T09:30:00Z",
        "updated_at": "2025-01-31T09:30:00Z",
    }
    pagination_class = NewestFirstCursorPagination
    delete_service = staticmethod(lambda instance: contact_delete(contact=instance))
    write_role = Role.AGENT

    def required_role(self, request: Request) -> str:
        return Role.ADMIN if request.method == "DELETE" else super().required_role(request)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = contact_create(tenant=self.tenant, **serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        contact = serializer.instance
        assert contact is not None
        serializer.instance = contact_update(contact=contact, name=serializer.validated_data.get("name", contact.name))


@extend_schema_view(
    list=extend_schema(summary="List a contact's identities"),
    retrieve=extend_schema(summary="Get an identity"),
    create=extend_schema(
        summary="Add an identity",
        description=(
            "Normalises the address: emails are lower-cased, phone and WhatsApp numbers become E.164 (give "
            "them in international format, with + and the country code). Adding an address the contact "
            "already has returns it. Identities added here are unverified: they never link a visitor to "
            "this contact's history."
        ),
        examples=[
            OpenApiExample("Phone", value={"kind": "phone", "value": "+44 20 7946 0958"}, request_only=True),
            OpenApiExample(
                "Normalised",
                value={
                    "id": 7,
                    "kind": "phone",
                    "value": "+442079460958",
                    "verified": False,
                    "created_at": "2025-01-31T09:30:00Z",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    ),
    destroy=extend_schema(summary="Remove an identity"),
)
class ContactIdentityViewSet(TenantScopedViewSet):
    """`/contacts/{contact_pk}/identities/`: the addresses of one contact of the tenant."""

    queryset = ContactIdentity.objects.order_by("kind", "value")
    serializer_class = ContactIdentitySerializer
    resource_example = {
        "id": 3,
        "kind": "email",
        "value": "ada@example.com",
        "verified": False,
        "created_at": "2025-01-31T09:30:00Z",
    }
    write_role = Role.AGENT
    http_method_names = ["get", "post", "delete", "head", "options"]
    contact: Contact

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.contact = get_object_or_404(Contact.objects.for_tenant(self.tenant), pk=kwargs["contact_pk"])

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(contact=self.contact)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = contact_identity_add(contact=self.contact, **serializer.validated_data)

    def perform_destroy(self, instance: Model) -> None:
        contact_identity_remove(identity=instance)  # type: ignore[arg-type]


# --- API keys ----------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List API keys", description="Admins only. Never shows a key's secret."),
    retrieve=extend_schema(summary="Get an API key"),
    destroy=extend_schema(
        summary="Revoke an API key",
        description="The key stops working at once; it stays listed with `revoked_at` set.",
    ),
)
class ApiKeyViewSet(TenantScopedViewSet):
    queryset = ApiKey.objects.order_by("-created_at", "-pk")
    serializer_class = ApiKeySerializer
    resource_example = {
        "id": 3,
        "name": "CRM sync",
        "prefix": "1f2e3d4c5b6a",
        "created_by": None,
        "created_at": "2025-01-31T09:30:00Z",
        "last_used_at": "2025-02-01T08:00:00Z",
        "revoked_at": None,
    }
    read_role = Role.ADMIN
    http_method_names = ["get", "post", "delete", "head", "options"]

    @extend_schema(
        summary="Create an API key",
        description="Admins only. The response carries the key in `key`, this once: store it now.",
        responses={201: ApiKeyCreatedSerializer},
        examples=[
            OpenApiExample("New key", value={"name": "CRM sync"}, request_only=True),
            OpenApiExample(
                "Issued",
                value={
                    "id": 3,
                    "name": "CRM sync",
                    "prefix": "1f2e3d4c5b6a",
                    "created_by": None,
                    "created_at": "2025-01-31T09:30:00Z",
                    "last_used_at": None,
                    "revoked_at": None,
                    "key": "sb_1f2e3d4c5b6a_9Jm4b1S0Xk2YqvV7pW3r8tZ5nH6cL0dA1eF2gI3jK4o",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = self.principal.membership
        issued = apikey_create(
            tenant=self.tenant,
            name=serializer.validated_data["name"],
            created_by=membership.user if membership else None,
        )
        context = {**self.get_serializer_context(), "plaintext": issued.plaintext}
        return Response(ApiKeyCreatedSerializer(issued.key, context=context).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Model) -> None:
        apikey_revoke(key=instance)  # type: ignore[arg-type]


# --- outbound webhooks -------------------------------------------------------------------------------------

WEBHOOK_EXAMPLE = {
    "id": 4,
    "url": "https://hooks.example.com/switchboard",
    "description": "CRM sync",
    "event_types": ["conversation.created", "message.created"],
    "enabled": True,
    "disabled_at": None,
    "disabled_reason": "",
    "failing_since": None,
    "rotation_expires_at": None,
    "created_at": "2025-01-31T09:30:00Z",
    "updated_at": "2025-01-31T09:30:00Z",
}
PRIVATE_REFUSAL = "Webhooks go to public addresses only: 10.0.0.1 → 10.0.0.1 is a private address."
WEBHOOK_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


DELIVERY_EXAMPLE = {
    "id": 311,
    "event": {
        "id": "msg_2hXk9w1bQe4rT7yU0iO6aS3d",
        "type": "message.created",
        "created_at": "2025-01-31T09:31:02Z",
        "data": {
            "id": 9120,
            "conversation_id": 77,
            "seq": 3,
            "sender_kind": "visitor",
            "sender_user_id": None,
            "body": "Hello, is my order on its way?",
            "channel": "web",
            "private": False,
            "created_at": "2025-01-31T09:31:02Z",
        },
    },
    "state": "delivered",
    "attempt_count": 2,
    "next_attempt_at": None,
    "last_status_code": 200,
    "last_error": "",
    "delivered_at": "2025-01-31T09:31:09Z",
    "created_at": "2025-01-31T09:31:02Z",
    "attempts": [
        {
            "at": "2025-01-31T09:31:02Z",
            "status_code": 503,
            "error": "HTTP 503",
            "latency_ms": 41,
            "response_body": "busy",
        },
        {"at": "2025-01-31T09:31:09Z", "status_code": 200, "error": "", "latency_ms": 38, "response_body": "ok"},
    ],
}


class WebhookDeliveryCursorPagination(NewestFirstCursorPagination):
    """Newest first; follow `next` (it carries an opaque `cursor`). A cursor that was tampered with answers 400."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    page_size_query_description = "At most this many deliveries (default 50, at most 200)."


@extend_schema_view(
    list=extend_schema(
        summary="List webhook subscriptions",
        description="Admins only. Never shows a secret: it is shown once, on create and on rotate.",
    ),
    retrieve=extend_schema(summary="Get a webhook subscription"),
    partial_update=extend_schema(
        summary="Change a webhook subscription",
        description="Any of `url`, `description`, `event_types`, `enabled`. `enabled: true` turns back on a "
        "subscription disabled after a day of failed deliveries (replay what it missed from its deliveries).",
        examples=[OpenApiExample("Turn back on", value={"enabled": True}, request_only=True)],
    ),
    destroy=extend_schema(
        summary="Delete a webhook subscription", description="With its deliveries and their attempts."
    ),
)
class WebhookSubscriptionViewSet(TenantScopedViewSet):
    """`/webhooks/`: where the tenant's events go (Standard Webhooks; docs/webhooks.md)."""

    queryset = WebhookSubscription.objects.order_by("-created_at", "-pk")
    serializer_class = WebhookSubscriptionSerializer
    resource_example = WEBHOOK_EXAMPLE
    read_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _issued(self, issued: IssuedSubscription, status_code: int) -> Response:
        context = {**self.get_serializer_context(), "secret": issued.secret}
        return Response(
            WebhookSubscriptionCreatedSerializer(issued.subscription, context=context).data, status=status_code
        )

    @extend_schema(
        summary="Subscribe a URL to events",
        description="Admins only. The response carries the signing secret in `secret`, this once: store it now. "
        "Each delivery is signed with it (headers `webhook-id`, `webhook-timestamp`, `webhook-signature`), so "
        "any Standard Webhooks library verifies it.",
        responses={201: WebhookSubscriptionCreatedSerializer},
        examples=[
            OpenApiExample(
                "Subscribe",
                value={
                    "url": "https://hooks.example.com/switchboard",
                    "description": "CRM sync",
                    "event_types": ["conversation.created", "message.created"],
                },
                request_only=True,
            ),
            OpenApiExample(
                "Subscribed",
                value={**WEBHOOK_EXAMPLE, "secret": WEBHOOK_SECRET_EXAMPLE},
                response_only=True,
                status_codes=["201"],
            ),
            OpenApiExample(
                "Private address",
                value={
                    "error": {
                        "code": "url_not_allowed",
                        "message": "Webhooks go to public addresses only: 10.0.0.1 → 10.0.0.1 is a private address.",
                        "fields": {
                            "url": ["Webhooks go to public addresses only: 10.0.0.1 → 10.0.0.1 is a private address."]
                        },
                    }
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = webhook_subscription_create(
            tenant=self.tenant,
            url=data["url"],
            description=data.get("description", ""),
            event_types=data.get("event_types", []),
            enabled=data.get("enabled", True),
        )
        return self._issued(issued, status.HTTP_201_CREATED)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        subscription = serializer.instance
        assert isinstance(subscription, WebhookSubscription)
        serializer.instance = webhook_subscription_update(subscription=subscription, **serializer.validated_data)

    def perform_destroy(self, instance: Model) -> None:
        webhook_subscription_delete(subscription=instance)  # type: ignore[arg-type]

    @extend_schema(
        summary="Rotate a subscription's secret",
        description="A new secret, shown in this response only. The previous one keeps signing beside it until "
        "`rotation_expires_at` (24 hours by default): each delivery meanwhile carries two signatures, so the "
        "receiver verifies with either while it switches.",
        request=None,
        responses={200: WebhookSubscriptionCreatedSerializer},
        examples=[
            OpenApiExample(
                "Rotated",
                value={
                    **WEBHOOK_EXAMPLE,
                    "rotation_expires_at": "2025-02-01T09:30:00Z",
                    "secret": "whsec_3n9QvK1x8bWmZ5cP2rT7yU4iO6aS0dF1",
                },
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        return self._issued(webhook_subscription_rotate(subscription=self.get_object()), status.HTTP_200_OK)

    @extend_schema(
        summary="Replay a delivery",
        description="Sends a finished delivery (delivered, failed or given up) of this subscription again, now, with "
        "the same `webhook-id` (receivers deduplicate by it) and a fresh retry budget. 409 `delivery_pending` while "
        "it is still being attempted, `subscription_disabled` while the subscription is off.",
        parameters=[OpenApiParameter("delivery_pk", int, OpenApiParameter.PATH, description="The delivery's `id`.")],
        request=None,
        responses={202: WebhookDeliverySerializer},
        examples=[
            OpenApiExample(
                "Queued again",
                value={**DELIVERY_EXAMPLE, "state": "pending", "attempt_count": 0, "delivered_at": None},
                response_only=True,
                status_codes=["202"],
            )
        ],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_pk>[0-9]+)/replay",
        url_name="replay-delivery",
    )
    def replay_delivery(self, request: Request, pk: str | None = None, delivery_pk: str | None = None) -> Response:
        delivery = webhook_delivery_replay(subscription=self.get_object(), delivery_id=int(delivery_pk or 0))
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        summary="List a subscription's deliveries",
        description="Admins only. Newest first, each with its attempts (status code or error, latency, the start "
        "of the answer). Cursor pagination: follow `next`.",
        examples=[
            OpenApiExample(
                "Page",
                value=DELIVERY_EXAMPLE,
                response_only=True,
                status_codes=["200"],
            )
        ],
    ),
    retrieve=extend_schema(summary="Get a delivery"),
)
class WebhookDeliveryViewSet(TenantScopedViewSet):
    """`/webhooks/{subscription_pk}/deliveries/`: what was sent to one subscription, and how it went."""

    queryset = WebhookDelivery.objects.select_related("event").prefetch_related(
        Prefetch("attempt_rows", queryset=WebhookAttempt.objects.order_by("at", "pk"))
    )
    serializer_class = WebhookDeliverySerializer
    resource_example = DELIVERY_EXAMPLE
    pagination_class = WebhookDeliveryCursorPagination
    read_role = Role.ADMIN
    http_method_names = ["get", "head", "options"]
    subscription: WebhookSubscription

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.subscription = get_object_or_404(
            WebhookSubscription.objects.for_tenant(self.tenant), pk=kwargs["subscription_pk"]
        )

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(subscription=self.subscription)
