"""Forms of the account pages and the API-key settings page, and the ApplicationError → form bridge."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.models import User

from contactcenter.errors import ApplicationError
from contactcenter.ratelimit import client_ip, signin_failed, signin_succeeded, signin_wait


def apply_application_error(form: forms.BaseForm, exc: ApplicationError, aliases: dict[str, str] | None = None) -> None:
    """Shows a refused service call on the bound form: each field message next to its field, the rest on top.

    `aliases` maps a service field name to the form field that edits it (e.g. `max_upload_bytes` →
    `max_upload_mb`).
    """
    aliases = aliases or {}
    placed = False
    for name, messages in exc.fields.items():
        target = aliases.get(name, name)
        for message in messages:
            form.add_error(target if target in form.fields else None, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class LoginForm(AuthenticationForm):
    """Email and password; refuses people who belong to no tenant (superusers go to the Django admin)."""

    username = forms.CharField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Enter a correct email and password.",
        "no_membership": (
            "This account does not belong to any team on this server. Ask your administrator to invite you."
        ),
    }

    # Seconds until this account may try again from this address (set when a sign-in is refused for it).
    retry_after: int | None = None

    def clean_username(self) -> str:
        return (self.cleaned_data.get("username") or "").strip().lower()

    def clean(self) -> dict[str, Any]:
        """Refuses, without looking at the password, an account and address past their failed-sign-in limits."""
        account = self.cleaned_data.get("username") or ""
        address = client_ip(self.request.META) if self.request is not None else "unknown"
        if account:
            self.retry_after = signin_wait(account=account, address=address)
            if self.retry_after is not None:
                raise forms.ValidationError(throttled_message(self.retry_after), code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if account and self.user_cache is None:  # a wrong password (not a refused but right one)
                signin_failed(account=account, address=address)
            raise
        if account:
            signin_succeeded(account=account, address=address)
        return cleaned

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_superuser and getattr(user, "membership", None) is None:
            raise forms.ValidationError(self.error_messages["no_membership"], code="no_membership")


def throttled_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    when = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return (
        f"Too many failed sign-in attempts for this account from your network. Try again in {when}, "
        "or reset your password."
    )


class PasswordResetRequestForm(PasswordResetForm):
    """Django's reset form, also reaching invited teammates who never chose a password.

    Django skips users without a usable password (accounts managed elsewhere); here an invited member
    has none until they accept, and asking for a reset link is how they get a fresh invitation.
    """

    email = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )

    def get_users(self, email: str) -> Iterator[User]:
        users = get_user_model()._default_manager.filter(email__iexact=email.strip(), is_active=True)
        for user in users:
            if user.has_usable_password() or getattr(user, "membership", None) is not None:
                yield user


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        help_text="Who or what uses the key, e.g. “CRM sync”. You can revoke it any time.",
    )


class WebhookSubscriptionForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="Where Switchboard POSTs the events: https, on a public address.",
    )
    description = forms.CharField(max_length=200, required=False, help_text="What receives them, e.g. “CRM sync”.")
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event, including types added later.",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        from contactcenter.services.webhooks_out import EVENT_DESCRIPTIONS, EVENT_TYPES

        super().__init__(*args, **kwargs)
        field = self.fields["event_types"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(kind, f"{kind} — {EVENT_DESCRIPTIONS[kind]}") for kind in EVENT_TYPES]
