"""The settings pages' shared machinery (admin-only access, list/form/delete views) and the API-key pages."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db.models import Model, Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from contactcenter.errors import ApplicationError
from contactcenter.forms import ApiKeyForm, WebhookSubscriptionForm, apply_application_error
from contactcenter.models import (
    ApiKey,
    Membership,
    Role,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from contactcenter.services import apikey_create, apikey_revoke
from contactcenter.services.webhooks_out import (
    IssuedSubscription,
    webhook_delivery_replay,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_rotate,
    webhook_subscription_update,
)


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


# --- outbound webhooks ------------------------------------------------------------------------------------

WEBHOOK_RECENT_DELIVERIES = 25


class WebhookListView(SettingsListView):
    section = "webhooks"
    model = WebhookSubscription
    template_name = "settings/webhooks_list.html"

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().order_by("-created_at", "-pk")


def _secret_page(
    view: AdminRequiredView, request: HttpRequest, issued: IssuedSubscription, *, rotated: bool
) -> HttpResponse:
    return view.page(
        request,
        "settings/webhook_secret.html",
        {
            "subscription": issued.subscription,
            "secret": issued.secret,
            "rotated": rotated,
            "grace_hours": settings.WEBHOOKS_ROTATION_GRACE_SECONDS // 3600,
        },
    )


@method_decorator(never_cache, name="dispatch")
class WebhookCreateView(AdminRequiredView):
    """The secret is rendered in the POST's own response, once: never put in a URL or the session."""

    section = "webhooks"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_form(request, WebhookSubscriptionForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = WebhookSubscriptionForm(request.POST)
        if form.is_valid():
            try:
                issued = webhook_subscription_create(tenant=self.tenant, **form.cleaned_data)
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                return _secret_page(self, request, issued, rotated=False)
        return self.render_form(request, form)

    def render_form(self, request: HttpRequest, form: forms.Form) -> HttpResponse:
        context = {
            "form": form,
            "noun": "webhook",
            "title": "New webhook",
            "intro": "Every delivery is signed (Standard Webhooks): your receiver checks it came from Switchboard.",
            "submit_label": "Create webhook",
            "cancel_url": reverse("settings-webhooks-list"),
            "list_label": "Webhooks",
        }
        return self.page(request, "settings/form.html", context)


class WebhookDetailView(TenantObjectMixin, AdminRequiredView):
    """One subscription: its state, its recent deliveries with their attempts, and the actions on them."""

    section = "webhooks"
    model = WebhookSubscription

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        subscription = self.get_object()
        deliveries = (
            WebhookDelivery.objects.for_tenant(self.tenant)
            .filter(subscription=subscription)
            .select_related("event")
            .prefetch_related(Prefetch("attempt_rows", queryset=WebhookAttempt.objects.order_by("at", "pk")))
            .order_by("-pk")[:WEBHOOK_RECENT_DELIVERIES]
        )
        return self.page(
            request, "settings/webhook_detail.html", {"subscription": subscription, "deliveries": deliveries}
        )


@method_decorator(never_cache, name="dispatch")
class WebhookRotateView(TenantObjectMixin, AdminRequiredView):
    section = "webhooks"
    model = WebhookSubscription
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        return _secret_page(self, request, webhook_subscription_rotate(subscription=self.get_object()), rotated=True)


class WebhookToggleView(TenantObjectMixin, AdminRequiredView):
    section = "webhooks"
    model = WebhookSubscription
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        subscription = self.get_object()
        enable = request.POST.get("enabled") == "true"
        webhook_subscription_update(subscription=subscription, enabled=enable)
        messages.success(request, f"Webhook {'enabled' if enable else 'disabled'}.")
        return redirect("settings-webhooks-detail", pk=subscription.pk)


class WebhookReplayView(TenantObjectMixin, AdminRequiredView):
    section = "webhooks"
    model = WebhookSubscription
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int, delivery_id: int) -> HttpResponse:
        subscription = self.get_object()
        try:
            webhook_delivery_replay(subscription=subscription, delivery_id=delivery_id)
        except ApplicationError as exc:
            if exc.status == 404:
                raise Http404(exc.message) from exc
            messages.error(request, exc.message)
        else:
            messages.success(request, "Delivery queued again, with the same webhook-id.")
        return redirect("settings-webhooks-detail", pk=subscription.pk)


class WebhookDeleteView(SettingsDeleteView):
    section = "webhooks"
    list_title = "Webhooks"
    model = WebhookSubscription
    noun = "webhook"
    list_url_name = "settings-webhooks-list"
    consequence = "Its deliveries and their attempts are deleted with it. This cannot be undone."

    def delete(self, obj: Any) -> None:
        webhook_subscription_delete(subscription=obj)
