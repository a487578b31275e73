"""The settings pages' shared machinery (admin-only access, list/form/delete views) and the API-key pages."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from contactcenter.errors import ApplicationError
from contactcenter.forms import ApiKeyForm, apply_application_error
from contactcenter.models import ApiKey, Membership, Role, Tenant
from contactcenter.services import apikey_create, apikey_revoke


class AdminRequiredView(View):
    """Signed-in admins of a tenant only: anonymous people go to the sign-in page, others get a 403 page."""

    section: ClassVar[str] = ""  # which side-navigation entry is current
    membership: Membership
    tenant: Tenant

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = getattr(request.user, "membership", None)
        if membership is None or membership.role != Role.ADMIN:
            return render(request, "settings/forbidden.html", {"membership": membership}, status=403)
        self.membership = membership
        self.tenant = membership.tenant
        return super().dispatch(request, *args, **kwargs)

    def page(self, request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
        return render(request, template, {"section": self.section, "tenant": self.tenant, **context}, status=status)


class TenantObjectMixin:
    """Fetches `pk` among the tenant's own rows: another tenant's id is the same 404 as a missing one."""

    model: ClassVar[type[Model]]
    list_title: ClassVar[str] = ""  # the side-navigation name of the resource, for "back" links
    tenant: Tenant
    kwargs: dict[str, Any]

    def get_queryset(self) -> QuerySet[Any]:
        return self.model.objects.for_tenant(self.tenant)  # type: ignore[attr-defined]

    def get_object(self) -> Any:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])


class SettingsListView(TenantObjectMixin, AdminRequiredView):
    template_name: ClassVar[str]

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request, self.template_name, {"objects": self.get_queryset()})


class SettingsFormView(TenantObjectMixin, AdminRequiredView):
    """Create (no `pk`) or edit (`pk`) one row through one service; a refused save re-renders what was typed."""

    form_class: ClassVar[type[forms.Form]]
    template_name: ClassVar[str] = "settings/form.html"
    noun: ClassVar[str]  # "template", "pause reason"
    list_url_name: ClassVar[str]
    error_aliases: ClassVar[dict[str, str]] = {}
    delete_label: ClassVar[str] = "Delete"
    object: Any = None

    def initial_from(self, obj: Any) -> dict[str, Any]:
        form = self.form_class()
        return {name: getattr(obj, name) for name in form.fields}

    def make_form(self, data: Any = None) -> forms.Form:
        initial = self.initial_from(self.object) if self.object is not None else None
        return self.form_class(data=data, initial=initial)

    def save(self, form: forms.Form) -> Any:
        raise NotImplementedError

    def success_url(self, obj: Any) -> str:
        return reverse(self.list_url_name)

    def delete_url(self, obj: Any) -> str:
        # URL names follow settings-<resource>-<action>.
        return reverse(self.list_url_name.removesuffix("-list") + "-delete", kwargs={"pk": obj.pk})

    def extra_context(self) -> dict[str, Any]:
        return {}

    def success_message(self, obj: Any) -> str:
        return f"{self.noun.capitalize()} “{obj}” saved."

    def render_form(self, request: HttpRequest, form: forms.Form) -> HttpResponse:
        creating = self.object is None
        context = {
            "form": form,
            "object": self.object,
            "noun": self.noun,
            "title": f"New {self.noun}" if creating else str(self.object),
            "list_label": self.list_title,
            "submit_label": f"Create {self.noun}" if creating else "Save changes",
            "cancel_url": reverse(self.list_url_name),
            "delete_url": None if creating else self.delete_url(self.object),
            "delete_label": self.delete_label,
            **self.extra_context(),
        }
        return self.page(request, self.template_name, context)

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        self.object = self.get_object() if pk is not None else None
        return self.render_form(request, self.make_form())

    def post(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        self.object = self.get_object() if pk is not None else None
        form = self.make_form(request.POST)
        if form.is_valid():
            try:
                obj = self.save(form)
            except ApplicationError as exc:
                apply_application_error(form, exc, self.error_aliases)
            else:
                messages.success(request, self.success_message(obj))
                return redirect(self.success_url(obj))
        return self.render_form(request, form)


class SettingsDeleteView(TenantObjectMixin, AdminRequiredView):
    """GET asks for confirmation, POST deletes through the service; a refusal is shown on the same page."""

    template_name: ClassVar[str] = "settings/confirm_delete.html"
    noun: ClassVar[str]
    list_url_name: ClassVar[str]
    action: ClassVar[str] = "Delete"
    done: ClassVar[str] = "deleted"
    consequence: ClassVar[str] = "This cannot be undone."

    def delete(self, obj: Any) -> None:
        raise NotImplementedError

    def object_label(self, obj: Any) -> str:
        return str(obj)

    def render_confirm(self, request: HttpRequest, obj: Any, error: str = "", status: int = 200) -> HttpResponse:
        context = {
            "object": obj,
            "label": self.object_label(obj),
            "noun": self.noun,
            "action": self.action,
            "consequence": self.consequence,
            "error": error,
            "cancel_url": reverse(self.list_url_name),
            "list_label": self.list_title,
        }
        return self.page(request, self.template_name, context, status=status)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self.render_confirm(request, self.get_object())

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = self.get_object()
        label = self.object_label(obj)
        try:
            self.delete(obj)
        except ApplicationError as exc:
            return self.render_confirm(request, obj, error=exc.message, status=exc.status)
        messages.success(request, f"{self.noun.capitalize()} “{label}” {self.done}.")
        return HttpResponseRedirect(reverse(self.list_url_name))


# --- API keys ---------------------------------------------------------------------------------------


class ApiKeyListView(SettingsListView):
    section = "apikeys"
    model = ApiKey
    template_name = "settings/apikeys_list.html"

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("created_by").order_by("revoked_at", "-created_at")


@method_decorator(never_cache, name="dispatch")
class ApiKeyCreateView(AdminRequiredView):
    """The plaintext is rendered in the POST's own response, once: it is never put in a URL or the session."""

    section = "apikeys"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_form(request, ApiKeyForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                issued = apikey_create(tenant=self.tenant, name=form.cleaned_data["name"], created_by=request.user)  # type: ignore[arg-type]
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                api_url = request.build_absolute_uri("/api/v1/conversations/")
                return self.page(
                    request,
                    "settings/apikey_created.html",
                    {"key": issued.key, "plaintext": issued.plaintext, "api_url": api_url},
                )
        return self.render_form(request, form)

    def render_form(self, request: HttpRequest, form: forms.Form) -> HttpResponse:
        context = {
            "form": form,
            "noun": "API key",
            "title": "New API key",
            "submit_label": "Create key",
            "cancel_url": reverse("settings-apikeys-list"),
            "list_label": "API keys",
        }
        return self.page(request, "settings/form.html", context)


class ApiKeyRevokeView(SettingsDeleteView):
    section = "apikeys"
    list_title = "API keys"
    model = ApiKey
    noun = "API key"
    list_url_name = "settings-apikeys-list"
    action = "Revoke"
    done = "revoked"
    consequence = "Requests made with this key will be refused from now on. This cannot be undone."

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(revoked_at__isnull=True)

    def delete(self, obj: Any) -> None:
        apikey_revoke(key=obj)
