"""Settings pages of teammates (invite, edit, remove), canned templates, dispositions and pause reasons."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from agents.forms import AgentEditForm, AgentInviteForm, DispositionForm, PauseReasonForm, TemplateForm
from agents.models import CannedTemplate, Disposition, PauseReason
from agents.services import (
    agent_invite,
    agent_update,
    disposition_delete,
    disposition_save,
    pause_reason_delete,
    pause_reason_save,
    template_delete,
    template_save,
)
from contactcenter.errors import ApplicationError
from contactcenter.models import Membership, user_display_name
from contactcenter.services import membership_invite_resend, membership_is_pending, membership_remove
from contactcenter.settings_views import (
    AdminRequiredView,
    SettingsDeleteView,
    SettingsFormView,
    SettingsListView,
    TenantObjectMixin,
)

# --- teammates --------------------------------------------------------------------------------------


class AgentsMixin:
    section: ClassVar[str] = "agents"
    list_title: ClassVar[str] = "Agents"
    model: ClassVar[type[Model]] = Membership
    noun: ClassVar[str] = "teammate"
    list_url_name: ClassVar[str] = "settings-agents-list"


class AgentListView(AgentsMixin, SettingsListView):
    template_name = "settings/agents_list.html"

    def get_queryset(self) -> QuerySet[Any]:
        return (
            super()
            .get_queryset()
            .select_related("user", "user__agent_profile")
            .order_by("user__first_name", "user__last_name", "user__email")
        )

    def get(self, request: HttpRequest) -> HttpResponse:
        rows = [
            {"membership": m, "name": user_display_name(m.user), "pending": membership_is_pending(m)}
            for m in self.get_queryset()
        ]
        return self.page(request, self.template_name, {"rows": rows})


class AgentInviteView(AgentsMixin, SettingsFormView):
    form_class = AgentInviteForm

    def render_form(self, request: HttpRequest, form: forms.Form) -> HttpResponse:
        context = {
            "form": form,
            "title": "Invite a teammate",
            "intro": "They get an email with a link to choose their password. The link works once and expires "
            "after a few days; you can send a new one from the list.",
            "submit_label": "Send invitation",
            "cancel_url": reverse(self.list_url_name),
            "list_label": self.list_title,
        }
        return self.page(request, self.template_name, context)

    def save(self, form: forms.Form) -> Membership:
        return agent_invite(tenant=self.tenant, invited_by=self.request.user, **form.cleaned_data)  # type: ignore[arg-type]

    def success_message(self, obj: Membership) -> str:
        return f"Invitation sent to {obj.user.email}."


class AgentEditView(AgentsMixin, SettingsFormView):
    form_class = AgentEditForm
    delete_label = "Remove from team"

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("user", "user__agent_profile")

    def initial_from(self, obj: Any) -> dict[str, Any]:
        profile = getattr(obj.user, "agent_profile", None)
        return {
            "first_name": obj.user.first_name,
            "last_name": obj.user.last_name,
            "role": obj.role,
            "max_chats": profile.max_chats if profile else 3,
        }

    def extra_context(self) -> dict[str, Any]:
        return {
            "title": user_display_name(self.object.user),
            "intro": f"Email: {self.object.user.email}",
        }

    def success_message(self, obj: Membership) -> str:
        return f"{user_display_name(obj.user)} saved."

    def save(self, form: forms.Form) -> Membership:
        return agent_update(membership=self.object, acting=self.membership, **form.cleaned_data)


class AgentRemoveView(AgentsMixin, SettingsDeleteView):
    action = "Remove"
    done = "removed"
    consequence = "They can no longer sign in. Their past conversations stay."

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("user")

    def object_label(self, obj: Any) -> str:
        return user_display_name(obj.user)

    def delete(self, obj: Any) -> None:
        membership_remove(membership=obj)


class AgentResendInviteView(AgentsMixin, TenantObjectMixin, AdminRequiredView):
    """POST only: emails a fresh invitation link to a teammate who has not accepted yet."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        membership = self.get_object()
        try:
            membership_invite_resend(membership=membership, invited_by=request.user)  # type: ignore[arg-type]
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"A new invitation was sent to {membership.user.email}.")
        return redirect(self.list_url_name)


# --- canned templates ---------------------------------------------------------------------------------


class TemplatesMixin:
    section: ClassVar[str] = "templates"
    list_title: ClassVar[str] = "Templates"
    model: ClassVar[type[Model]] = CannedTemplate
    noun: ClassVar[str] = "template"
    list_url_name: ClassVar[str] = "settings-templates-list"


class TemplateListView(TemplatesMixin, SettingsListView):
    template_name = "settings/templates_list.html"


class TemplateFormView(TemplatesMixin, SettingsFormView):
    form_class = TemplateForm

    def save(self, form: forms.Form) -> CannedTemplate:
        return template_save(tenant=self.tenant, instance=self.object, **form.cleaned_data)


class TemplateDeleteView(TemplatesMixin, SettingsDeleteView):
    def delete(self, obj: Any) -> None:
        template_delete(template=obj)


# --- dispositions ---------------------------------------------------------------------------------------


class DispositionsMixin:
    section: ClassVar[str] = "dispositions"
    list_title: ClassVar[str] = "Dispositions"
    model: ClassVar[type[Model]] = Disposition
    noun: ClassVar[str] = "disposition"
    list_url_name: ClassVar[str] = "settings-dispositions-list"


class DispositionListView(DispositionsMixin, SettingsListView):
    template_name = "settings/dispositions_list.html"


class DispositionFormView(DispositionsMixin, SettingsFormView):
    form_class = DispositionForm

    def save(self, form: forms.Form) -> Disposition:
        return disposition_save(tenant=self.tenant, instance=self.object, **form.cleaned_data)


class DispositionDeleteView(DispositionsMixin, SettingsDeleteView):
    def delete(self, obj: Any) -> None:
        disposition_delete(disposition=obj)


# --- pause reasons --------------------------------------------------------------------------------------


class PauseReasonsMixin:
    section: ClassVar[str] = "pause_reasons"
    list_title: ClassVar[str] = "Pause reasons"
    model: ClassVar[type[Model]] = PauseReason
    noun: ClassVar[str] = "pause reason"
    list_url_name: ClassVar[str] = "settings-pause-reasons-list"


class PauseReasonListView(PauseReasonsMixin, SettingsListView):
    template_name = "settings/pause_reasons_list.html"


class PauseReasonFormView(PauseReasonsMixin, SettingsFormView):
    form_class = PauseReasonForm

    def save(self, form: forms.Form) -> PauseReason:
        return pause_reason_save(tenant=self.tenant, instance=self.object, **form.cleaned_data)


class PauseReasonDeleteView(PauseReasonsMixin, SettingsDeleteView):
    consequence = "Agents paused for this reason stay paused, without a reason. This cannot be undone."

    def delete(self, obj: Any) -> None:
        pause_reason_delete(pause_reason=obj)
