"""Settings pages of channel connectors ("Channels"): one per kind, its provider and its credentials; and the
tenant's WhatsApp templates, under Channels."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from channels_switch.forms import ConnectorForm, TestMessageForm, WhatsAppTemplateForm
from channels_switch.models import ChannelConnector, ConnectorKind, Provider, WhatsAppTemplate
from channels_switch.providers import ProviderError, email_webhook_url, webhook_url
from channels_switch.selectors import whatsapp_connector_provider, whatsapp_template_list
from channels_switch.services import (
    connector_delete,
    connector_save,
    connector_test_send,
    whatsapp_template_delete,
    whatsapp_template_save,
)
from channels_switch.services.auth_codes import auth_code_minutes, auth_code_minutes_set
from contactcenter.errors import ApplicationError
from contactcenter.settings_views import (
    AdminRequiredView,
    SettingsDeleteView,
    SettingsFormView,
    SettingsListView,
    TenantObjectMixin,
)


class ChannelsMixin:
    section: ClassVar[str] = "channels"
    list_title: ClassVar[str] = "Channels"
    model: ClassVar[type[Model]] = ChannelConnector
    noun: ClassVar[str] = "channel"
    list_url_name: ClassVar[str] = "settings-channels-list"


class ChannelListView(ChannelsMixin, SettingsListView):
    template_name = "settings/channels_list.html"

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("queue")

    def get(self, request: HttpRequest, *, minutes: str | None = None, error: str = "") -> Any:
        by_kind = {connector.kind: connector for connector in self.get_queryset()}
        rows = [{"kind": kind, "label": kind.label, "connector": by_kind.get(kind)} for kind in ConnectorKind]
        context = {
            "rows": rows,
            "auth_code_minutes": minutes if minutes is not None else auth_code_minutes(tenant_id=self.tenant.pk),
            "auth_code_error": error,
        }
        return self.page(request, self.template_name, context)

    def post(self, request: HttpRequest) -> Any:
        """The tenant's auth code lifetime (docs/auth-codes.md), the page's one setting of its own."""
        typed = request.POST.get("auth_code_minutes", "").strip()
        try:
            auth_code_minutes_set(tenant_id=self.tenant.pk, minutes=int(typed))
        except (ValueError, ApplicationError):
            return self.get(request, minutes=typed, error="Enter a whole number of minutes from 1 to 1440.")
        messages.success(request, "Auth code lifetime saved.")
        return redirect("settings-channels-list")


# An error report of this page (DEBUG pages, mails to ADMINS) shows the secret as stars.
@method_decorator(sensitive_post_parameters("secret", "webhook_secret"), name="dispatch")
class ChannelFormView(ChannelsMixin, SettingsFormView):
    form_class = ConnectorForm
    template_name = "settings/channel_form.html"

    def make_form(self, data: Any = None) -> forms.Form:
        if self.object is not None:
            initial = ConnectorForm.initial_from(self.object)
        else:
            initial = {"kind": self.request.GET.get("kind", ""), "provider": "sandbox", "enabled": True}
        return ConnectorForm(data=data, initial=initial, tenant=self.tenant, connector=self.object)

    def extra_context(self) -> dict[str, Any]:
        if self.object is None:
            return {"title": "Set up a channel", "submit_label": "Save channel"}
        context: dict[str, Any] = {"title": f"{ConnectorKind(self.object.kind).label} channel"}
        if self.object.provider != Provider.SANDBOX:
            context["test_form"] = TestMessageForm(connector=self.object)
        if self.object.provider == Provider.TWILIO:
            context["webhooks"] = [
                (
                    "A message comes in",
                    webhook_url(self.object, "inbound"),
                    "Paste into Twilio: Phone Numbers → your number (or Messaging Services → your service, or the "
                    "WhatsApp sender) → A message comes in, method HTTP POST.",
                ),
                (
                    "Status callback",
                    webhook_url(self.object, "status"),
                    "Nothing to paste: every message sent through this channel asks Twilio to report its delivery "
                    "here.",
                ),
            ]
        if self.object.provider == Provider.ANYMAIL and self.object.esp:
            esp = self.object.get_esp_display()
            context["webhooks"] = [
                (
                    "Inbound mail",
                    email_webhook_url(self.object, "inbound"),
                    f"Paste into {esp}'s inbound (receiving) webhook for the inbound address or domain. Customers' "
                    "replies go to a reply address of their conversation there; the credentials in the URL are this "
                    "channel's own.",
                ),
                (
                    "Tracking events",
                    email_webhook_url(self.object, "tracking"),
                    f"Paste into {esp}'s event (tracking) webhook: delivered, bounced and opened mail shows in the "
                    "console.",
                ),
            ]
        return context

    def success_message(self, obj: Any) -> str:
        return f"{ConnectorKind(obj.kind).label} channel saved."

    def save(self, form: forms.Form) -> ChannelConnector:
        data = dict(form.cleaned_data)
        secret = data.pop("secret")
        webhook_secret = data.pop("webhook_secret", None)
        return connector_save(
            tenant=self.tenant, instance=self.object, secret=secret, webhook_secret=webhook_secret, **data
        )


class ChannelDeleteView(ChannelsMixin, SettingsDeleteView):
    action = "Remove"
    done = "removed"
    consequence = "Its credentials are deleted; conversations already on this channel keep their history."

    def object_label(self, obj: Any) -> str:
        return f"{ConnectorKind(obj.kind).label} channel"

    def delete(self, obj: Any) -> None:
        connector_delete(connector=obj)


class ChannelTestView(ChannelsMixin, TenantObjectMixin, AdminRequiredView):
    """POST: sends the test message now and shows the provider's answer, or its refusal, in plain words."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        connector = self.get_object()
        form = TestMessageForm(request.POST, connector=connector)
        edit = redirect("settings-channels-edit", pk=connector.pk)
        if not form.is_valid():
            messages.error(request, "Enter where to send the test message.")
            return edit
        provider = connector.get_esp_display() if connector.esp else connector.get_provider_display()
        try:
            sent = connector_test_send(connector=connector, to=form.cleaned_data["to"])
        except ApplicationError as exc:
            messages.error(request, exc.fields["to"][0] if "to" in exc.fields else exc.message)
        except ProviderError as exc:
            messages.error(request, f"{provider} did not send it. {exc.message}")
        else:
            segments = f", {sent.segments} segment{'s' if sent.segments != 1 else ''}" if sent.segments else ""
            messages.success(
                request, f"{provider} accepted the test message: id {sent.provider_id}, status {sent.status}{segments}."
            )
        return edit


# --- WhatsApp templates ----------------------------------------------------------------------------------


class WhatsAppTemplatesMixin:
    section: ClassVar[str] = "channels"
    list_title: ClassVar[str] = "WhatsApp templates"
    model: ClassVar[type[Model]] = WhatsAppTemplate
    noun: ClassVar[str] = "template"
    list_url_name: ClassVar[str] = "settings-whatsapp-templates-list"


class WhatsAppTemplateListView(WhatsAppTemplatesMixin, SettingsListView):
    template_name = "settings/whatsapp_templates_list.html"

    def get(self, request: HttpRequest) -> Any:
        provider = whatsapp_connector_provider(tenant_id=self.tenant.pk)
        context = {
            "objects": whatsapp_template_list(tenant_id=self.tenant.pk),
            "provider": provider,
            "twilio": provider == Provider.TWILIO,
        }
        return self.page(request, self.template_name, context)


class WhatsAppTemplateFormView(WhatsAppTemplatesMixin, SettingsFormView):
    form_class = WhatsAppTemplateForm

    def make_form(self, data: Any = None) -> forms.Form:
        initial = self.initial_from(self.object) if self.object is not None else None
        provider = whatsapp_connector_provider(tenant_id=self.tenant.pk)
        return WhatsAppTemplateForm(data=data, initial=initial, provider=provider)

    def initial_from(self, obj: Any) -> dict[str, Any]:
        fields = ("name", "language", "body", "content_sid", "enabled")
        return {name: getattr(obj, name) for name in fields}

    def extra_context(self) -> dict[str, Any]:
        context = {
            "intro": "Outside the 24 hours after a customer's last WhatsApp message, WhatsApp takes only templates "
            "it approved. Agents pick one in the console and fill in its placeholders."
        }
        if self.object is None:
            context["title"] = "New WhatsApp template"
        return context

    def success_message(self, obj: Any) -> str:
        return f"WhatsApp template {obj} saved."

    def save(self, form: forms.Form) -> WhatsAppTemplate:
        return whatsapp_template_save(tenant=self.tenant, instance=self.object, **form.cleaned_data)


class WhatsAppTemplateDeleteView(WhatsAppTemplatesMixin, SettingsDeleteView):
    consequence = "Messages already sent with it keep their text. This cannot be undone."

    def delete(self, obj: Any) -> None:
        whatsapp_template_delete(template=obj)
