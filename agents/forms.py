"""Settings forms for teammates, canned templates, dispositions and pause reasons."""

from __future__ import annotations

from django import forms

from agents.services import MAX_CHATS_LIMIT, TEMPLATE_PLACEHOLDERS
from contactcenter.models import Role

ROLE_HELP = "Agents answer chats; supervisors also watch queues; admins also change these settings."


class AgentInviteForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT, help_text=ROLE_HELP)
    max_chats = forms.IntegerField(label="Max concurrent chats", min_value=1, max_value=MAX_CHATS_LIMIT, initial=3)


class AgentEditForm(forms.Form):
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices, help_text=ROLE_HELP)
    max_chats = forms.IntegerField(label="Max concurrent chats", min_value=1, max_value=MAX_CHATS_LIMIT)


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=80)
    body = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Placeholders filled in when an agent inserts the template: "
        + ", ".join("{" + name + "}" for name in TEMPLATE_PLACEHOLDERS)
        + ". Give a fallback for a value a chat may not have, as in {visitor_name|there}; without one, the "
        "agent is asked to fill it in before sending.",
    )


class DispositionForm(forms.Form):
    name = forms.CharField(max_length=80)
    is_active = forms.BooleanField(
        label="Active", required=False, initial=True, help_text="Inactive outcomes are no longer offered to agents."
    )
    position = forms.IntegerField(
        min_value=0, max_value=32767, initial=0, help_text="Lower numbers come first in the agent's list."
    )


class PauseReasonForm(forms.Form):
    name = forms.CharField(max_length=80)
    paid = forms.BooleanField(required=False, initial=True, help_text="Time in this pause counts as paid time.")
    is_active = forms.BooleanField(
        label="Active", required=False, initial=True, help_text="Inactive reasons are no longer offered to agents."
    )
