"""API foundations: the tenant-scoped base viewset, pagination and the one error shape."""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from contactcenter.api_defaults import Principal
from contactcenter.errors import ApplicationError
from contactcenter.models import Role, Tenant

ERROR_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid",
    status.HTTP_401_UNAUTHORIZED: "not_authenticated",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_409_CONFLICT: "conflict",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "rate_limited",
}


def _flatten(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _flatten(value).items():
                    out[f"{key}.{sub}"] = messages
            elif isinstance(value, list):
                out[key] = [str(v) if not isinstance(v, dict) else str(_flatten(v)) for v in value]
            else:
                out[key] = [str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(v) for v in detail]}
    return {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every failure as `{"error": {"code", "message", "fields"}}`."""
    if isinstance(exc, ApplicationError):
        return Response({"error": exc.as_dict()}, status=exc.status)
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
        message = response.reason_phrase if hasattr(response, "reason_phrase") else "Error"
    code = ERROR_CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        code = "not_authenticated"
    response.data = {"error": {"code": code, "message": message, "fields": fields}}
    return response


class TenantScopedViewSet(viewsets.ModelViewSet):
    """Applies the tenant scope once for every API view: another tenant's object is a plain 404.

    Subclasses set `queryset`; `admin_only` (or `write_role`) sets the role writes need.
    """

    read_role: ClassVar[str] = Role.AGENT
    write_role: ClassVar[str] = Role.ADMIN
    tenant: Tenant
    principal: Principal

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.principal = request.principal  # type: ignore[attr-defined]
        self.tenant = self.principal.tenant

    def required_role(self, request: Request) -> str:
        return self.read_role if request.method in permissions.SAFE_METHODS else self.write_role

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        return queryset.filter(tenant=self.tenant)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if hasattr(self, "tenant"):
            context["tenant"] = self.tenant
        return context

    def perform_destroy(self, instance: Model) -> None:
        instance.delete()
