"""The classes REST_FRAMEWORK settings name: API-key auth, the acting principal, roles, rate limits, paging, parsers.

Kept apart from the viewsets: DRF imports these while it loads its own views, so this module must not
import rest_framework.views or viewsets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, pagination, parsers, permissions, throttling
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from contactcenter.errors import ApplicationError
from contactcenter.middleware import ensure_storable_form
from contactcenter.models import ROLE_RANK, ApiKey, Membership, Role, Tenant
from contactcenter.services import apikey_authenticate
from contactcenter.textinput import BadJson, UnstorableText, parse_json, unstorable_path


class ApiKeyUser(AnonymousUser):
    """The principal behind an API key: authenticated, admin inside the key's tenant, no user row."""

    def __init__(self, key: ApiKey):
        super().__init__()
        self.api_key = key

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the key as `Authorization: Bearer <key>`.")
        key = apikey_authenticate(plaintext=parts[1].decode("latin-1"))
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "contactcenter.api_defaults.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "sb_<prefix>_<secret>"}


@dataclass(frozen=True)
class Principal:
    """Who is acting through the API: their tenant and role, from an API key or a console session."""

    tenant: Tenant
    role: str
    membership: Membership | None
    api_key: ApiKey | None

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


def principal_of(request: Request) -> Principal | None:
    user = request.user
    if isinstance(user, ApiKeyUser):
        return Principal(tenant=user.api_key.tenant, role=Role.ADMIN, membership=None, api_key=user.api_key)
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    membership = Membership.objects.select_related("tenant").filter(user=user).first()
    if membership is None:
        return None
    return Principal(tenant=membership.tenant, role=membership.role, membership=membership, api_key=None)


class IsTenantMember(permissions.BasePermission):
    """Authenticated as a member of a tenant (or its key), with the role the view asks for."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = getattr(request, "principal", None)
        if principal is None:
            principal = principal_of(request)
            request.principal = principal  # type: ignore[attr-defined]
        if principal is None:
            if not request.user or not request.user.is_authenticated:
                raise exceptions.NotAuthenticated()
            return False
        required = view.required_role(request) if hasattr(view, "required_role") else Role.AGENT
        return principal.has_role(required)


class PrincipalRateThrottle(throttling.SimpleRateThrottle):
    """Per API key (or per console user) request budget; 429 with Retry-After past it."""

    scope = "principal"

    def get_rate(self) -> str:
        # SimpleRateThrottle copies THROTTLE_RATES once, at import: read the setting per request instead,
        # so a changed API_RATE_LIMIT (and override_settings in tests) takes effect.
        return str(settings.API_RATE_LIMIT)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if isinstance(user, ApiKeyUser):
            return f"throttle:key:{user.api_key.pk}"
        if user is not None and user.is_authenticated:
            return f"throttle:user:{user.pk}"
        return f"throttle:ip:{self.get_ident(request)}"


class DefaultPagination(pagination.LimitOffsetPagination):
    """`limit` and `offset` as documented, or a 400 naming them (DRF falls back to defaults on anything)."""

    default_limit = 50
    max_limit = 200
    limit_query_description = (
        f"At most this many results, 1 or more (default {default_limit}; above {max_limit} counts as "
        f"{max_limit}). Anything but a whole number answers 400 on `limit`."
    )
    offset_query_description = (
        "Skip this many results first, 0 or more (default 0). Anything but a whole number answers 400 on `offset`."
    )

    def _whole_number(self, request: Request, name: str, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
            raise exceptions.ValidationError({name: [f"Must be a whole number, {minimum} or more."]})
        return int(raw)

    def get_limit(self, request: Request) -> int:
        limit = self._whole_number(request, self.limit_query_param, 1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        return self._whole_number(request, self.offset_query_param, 0) or 0

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        minimum = {self.limit_query_param: 1, self.offset_query_param: 0}
        for parameter in parameters:
            parameter["schema"]["minimum"] = minimum[parameter["name"]]
        return parameters


class NewestFirstCursorPagination(pagination.CursorPagination):
    """Long lists (contacts, conversations): newest first, a page at a time, following `next` (or `previous`).

    A cursor holds a position, not an offset: rows created meanwhile never shift a page (no row repeated or
    skipped), and the database never counts or skips a long prefix. A cursor this API did not give answers
    400 on `cursor`; `limit` as in the other lists.
    """

    ordering: Any = ("-created_at", "-pk")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    page_size_query_description = (
        f"At most this many results, 1 or more (default {page_size}; above {max_page_size} counts as "
        f"{max_page_size}). Anything but a whole number answers 400 on `limit`."
    )
    cursor_query_description = "Where a page starts: the `cursor` of the `next` or `previous` link, as given."
    bad_cursor = "Not a cursor this API gave: follow `next` or `previous` as given."
    _model: Any = None

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise exceptions.ValidationError({self.page_size_query_param: ["Must be a whole number, 1 or more."]})
        return min(int(raw), self.max_page_size)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Any:
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({self.cursor_query_param: [self.bad_cursor]}) from exc
        if cursor is not None and cursor.position is not None and not self._position_valid(cursor.position):
            # A cursor is only base64: a made-up position must be a 400, not a database error.
            raise exceptions.ValidationError({self.cursor_query_param: [self.bad_cursor]})
        return cursor

    def _position_valid(self, position: Any) -> bool:
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        field = self._model._meta.get_field(ordering.lstrip("-"))
        try:
            value = field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            return False
        if isinstance(value, int):
            return -(2**63) <= value < 2**63
        if isinstance(value, datetime):
            return value.tzinfo is not None
        return value is not None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


# --- parsers: what the database cannot store is invalid input, refused before any serializer sees it ----------


class StorableJSONParser(parsers.JSONParser):
    """JSON through contactcenter.textinput: any parse failure (deep nesting included) is 400 `bad_json`,
    a NUL or lone surrogate anywhere 400 `invalid_text` naming where."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        raw = stream.read()
        try:
            text = raw if encoding.lower().replace("-", "").replace("_", "") == "utf8" else raw.decode(encoding)
            data = parse_json(text)
        except (BadJson, UnicodeDecodeError) as exc:
            message = str(exc) if isinstance(exc, BadJson) else "The body is not valid JSON."
            raise ApplicationError("bad_json", message) from exc
        path = unstorable_path(data)
        if path is not None:
            # Named like the API's other field errors: `survey_fields.0.label`.
            raise UnstorableText(re.sub(r"\[(\d+)\]", r".\1", path).lstrip("."))
        return data


class StorableFormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        ensure_storable_form(data)
        return data


class StorableMultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        ensure_storable_form(parsed.data, parsed.files)
        return parsed
