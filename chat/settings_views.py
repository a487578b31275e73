"""Settings pages of widgets: list, the General tab (with the embed snippet), the pre-chat survey tab, the Channel
Switching tab, the Hours & display tab, the Identity verification tab, delete."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from channels_switch.selectors import widget_switching_for
from channels_switch.services import switch_diagnostics, widget_switching_save
from chat.forms import (
    WIDGET_FIELD_ALIASES,
    WidgetForm,
    WidgetHoursForm,
    WidgetSurveyForm,
    WidgetSwitchingForm,
    survey_formset,
    survey_rows_as_typed,
)
from chat.models import Widget
from chat.services import widget_delete, widget_open_at, widget_save
from chat.services.identity import (
    widget_identity_secret_clear,
    widget_identity_secret_reveal,
    widget_identity_secret_rotate,
)
from contactcenter.errors import ApplicationError
from contactcenter.forms import apply_application_error
from contactcenter.settings_views import (
    AdminRequiredView,
    SettingsDeleteView,
    SettingsFormView,
    SettingsListView,
    TenantObjectMixin,
)
from queueing.models import Queue, QueueRoute
from queueing.services import widget_save_routed


def embed_snippet(widget: Widget) -> str:
    return (
        f'<script src="{settings.SITE_URL}/static/widget/loader.js" data-widget="{widget.public_key}" async></script>'
    )


def widget_routing(widget: Widget) -> dict[str, Any]:
    """The queue a widget routes to, or where to fix it: a widget routed nowhere answers "No one is available"."""
    route = QueueRoute.objects.for_tenant(widget.tenant_id).filter(widget=widget).select_related("queue").first()
    if route is not None:
        return {"route_queue": route.queue}
    queues = list(Queue.objects.for_tenant(widget.tenant_id).order_by("pk")[:2])
    if not queues:
        return {"route_queue": None, "fix_url": reverse("settings-queues-create"), "fix_label": "Create a queue"}
    if len(queues) == 1:
        url = reverse("settings-queues-edit", kwargs={"pk": queues[0].pk})
        return {"route_queue": None, "fix_url": url, "fix_label": f"Route it to “{queues[0].name}”"}
    return {"route_queue": None, "fix_url": reverse("settings-queues-list"), "fix_label": "Choose its queue"}


class WidgetsMixin:
    section: ClassVar[str] = "widgets"
    list_title: ClassVar[str] = "Widgets"
    model: ClassVar[type[Model]] = Widget
    noun: ClassVar[str] = "widget"
    list_url_name: ClassVar[str] = "settings-widgets-list"


class WidgetListView(WidgetsMixin, SettingsListView):
    template_name = "settings/widgets_list.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        routes = {r.widget_id: r.queue for r in QueueRoute.objects.for_tenant(self.tenant).select_related("queue")}
        rows = [{"widget": w, "queue": routes.get(w.pk)} for w in self.get_queryset()]
        context = {
            "rows": rows,
            "unrouted": [row["widget"] for row in rows if row["queue"] is None],
            "has_queues": Queue.objects.for_tenant(self.tenant).exists(),
        }
        return self.page(request, self.template_name, context)


class WidgetFormView(WidgetsMixin, SettingsFormView):
    """The General tab; a new widget lands on its edit page, where the embed snippet is."""

    form_class = WidgetForm
    template_name = "settings/widget_general.html"
    error_aliases = WIDGET_FIELD_ALIASES

    def initial_from(self, obj: Any) -> dict[str, Any]:
        return WidgetForm.initial_from(obj)

    def extra_context(self) -> dict[str, Any]:
        if self.object is None:
            return {}
        return {"tab": "general", "snippet": embed_snippet(self.object), **widget_routing(self.object)}

    def save(self, form: forms.Form) -> Widget:
        assert isinstance(form, WidgetForm)
        return widget_save_routed(tenant=self.tenant, instance=self.object, **form.service_fields())

    def success_url(self, obj: Any) -> str:
        return reverse("settings-widgets-edit", kwargs={"pk": obj.pk})


class WidgetSurveyView(WidgetsMixin, TenantObjectMixin, AdminRequiredView):
    """The pre-chat survey: on/off and a formset of fields. "Add a field" works without JavaScript: it
    re-renders the bound formset with one more blank row, saving nothing."""

    template_name = "settings/widget_survey.html"

    def render_page(
        self, request: HttpRequest, widget: Widget, form: WidgetSurveyForm, formset: forms.BaseFormSet
    ) -> HttpResponse:
        context = {
            "object": widget,
            "form": form,
            "formset": formset,
            "tab": "survey",
            "snippet": embed_snippet(widget),
            **widget_routing(widget),
        }
        return self.page(request, self.template_name, context)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        form = WidgetSurveyForm(initial={"survey_enabled": widget.survey_enabled})
        return self.render_page(request, widget, form, survey_formset(initial=widget.survey_fields or []))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        if "add_field" in request.POST:
            rows, blanks = survey_rows_as_typed(request.POST)
            form = WidgetSurveyForm(initial={"survey_enabled": bool(request.POST.get("survey_enabled"))})
            return self.render_page(request, widget, form, survey_formset(initial=rows, extra=blanks + 1))
        form = WidgetSurveyForm(request.POST)
        formset = survey_formset(data=request.POST)
        if form.is_valid() and formset.is_valid():
            try:
                widget_save(
                    tenant=self.tenant,
                    instance=widget,
                    survey_enabled=form.cleaned_data["survey_enabled"],
                    survey_fields=formset.survey_fields(),
                )
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                messages.success(request, f"Pre-chat survey of “{widget}” saved.")
                return redirect("settings-widgets-survey", pk=widget.pk)
        return self.render_page(request, widget, form, formset)


class WidgetSwitchingView(WidgetsMixin, TenantObjectMixin, AdminRequiredView):
    """The Channel Switching tab (seed 000): the switch button, the channels in the visitor's order, and, read
    live for this widget, why each channel would or would not be offered (its troubleshooting as diagnostics)."""

    template_name = "settings/widget_switching.html"

    def render_page(self, request: HttpRequest, widget: Widget, form: WidgetSwitchingForm) -> HttpResponse:
        context = {
            "object": widget,
            "form": form,
            "tab": "switching",
            "diagnoses": switch_diagnostics(widget=widget),
            "snippet": embed_snippet(widget),
            **widget_routing(widget),
        }
        return self.page(request, self.template_name, context)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        switching = widget_switching_for(tenant_id=widget.tenant_id, widget_id=widget.pk)
        if switching is None:
            initial = WidgetSwitchingForm.initial_from(False, [])
        else:
            initial = WidgetSwitchingForm.initial_from(
                switching.show_button,
                list(switching.channels),
                switching.dead_connection,
                switching.dead_connection_seconds,
            )
        return self.render_page(request, widget, WidgetSwitchingForm(initial=initial))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        form = WidgetSwitchingForm(request.POST)
        if form.is_valid():
            try:
                widget_switching_save(
                    tenant=self.tenant,
                    widget=widget,
                    show_button=form.cleaned_data["show_button"],
                    channels=form.channels(),
                    dead_connection=form.cleaned_data["dead_connection"],
                    dead_connection_seconds=form.cleaned_data["dead_connection_seconds"],
                )
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                messages.success(request, f"Channel switching of “{widget}” saved.")
                return redirect("settings-widgets-switching", pk=widget.pk)
        return self.render_page(request, widget, form)


class WidgetHoursView(WidgetsMixin, TenantObjectMixin, AdminRequiredView):
    """Business hours (outside them the chat is not offered and the message form says when the team is back) and
    the display rules loader.js applies on the customer's page."""

    template_name = "settings/widget_hours.html"

    def render_page(self, request: HttpRequest, widget: Widget, form: WidgetHoursForm) -> HttpResponse:
        context = {
            "object": widget,
            "form": form,
            "tab": "hours",
            "open_now": widget_open_at(widget=widget, now=timezone.now()),
            "snippet": embed_snippet(widget),
            **widget_routing(widget),
        }
        return self.page(request, self.template_name, context)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        form = WidgetHoursForm(initial=WidgetHoursForm.initial_from(widget), stored_week=widget.weekly_hours)
        return self.render_page(request, widget, form)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        form = WidgetHoursForm(request.POST, stored_week=widget.weekly_hours)
        if form.is_valid():
            try:
                widget_save(tenant=self.tenant, instance=widget, **form.service_fields())
            except ApplicationError as exc:
                widget.refresh_from_db()
                apply_application_error(form, exc)
            else:
                messages.success(request, f"Hours and display rules of “{widget}” saved.")
                return redirect("settings-widgets-hours", pk=widget.pk)
        return self.render_page(request, widget, form)


@method_decorator(never_cache, name="dispatch")
class WidgetIdentityView(WidgetsMixin, TenantObjectMixin, AdminRequiredView):
    """Identity verification (docs/identity-verification.md): make, replace or remove the widget's secret, and the
    code the customer's backend signs its users with. A new secret is shown once, on the page the POST redirects to
    (so a reload neither makes another one nor shows it again): the session carries only which rotation to reveal,
    and the secret is unsealed from the widget for that one response, never put in a URL, the session or a log."""

    template_name = "settings/widget_identity.html"
    REVEAL_KEY = "widget-identity-reveal"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        reveal = request.session.pop(self.REVEAL_KEY, None)
        secret = None
        if isinstance(reveal, dict) and reveal.get("widget") == widget.pk:
            secret = widget_identity_secret_reveal(widget=widget, set_at=str(reveal.get("set_at", "")))
        context = {
            "object": widget,
            "tab": "identity",
            "secret": secret,
            "snippet": embed_snippet(widget),
            "site_url": settings.SITE_URL,
            **widget_routing(widget),
        }
        return self.page(request, self.template_name, context)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        widget = self.get_object()
        if request.POST.get("action") == "remove":
            widget_identity_secret_clear(widget=widget)
            messages.success(request, f"Identity verification of “{widget}” is off: signed user ids are refused.")
            return redirect("settings-widgets-identity", pk=widget.pk)
        widget_identity_secret_rotate(widget=widget)
        assert widget.identity_secret_set_at is not None
        request.session[self.REVEAL_KEY] = {"widget": widget.pk, "set_at": widget.identity_secret_set_at.isoformat()}
        return redirect("settings-widgets-identity", pk=widget.pk)


class WidgetDeleteView(WidgetsMixin, SettingsDeleteView):
    consequence = "Its snippet stops working on your site. Past conversations stay. This cannot be undone."

    def delete(self, obj: Any) -> None:
        widget_delete(widget=obj)
