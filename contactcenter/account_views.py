"""Sign-in, sign-out, password reset and invite acceptance: Django's auth views with Switchboard's rules."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpRequest, HttpResponse
from django.urls import reverse_lazy

from contactcenter.forms import LoginForm, PasswordResetRequestForm


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        retry_after = getattr(form, "retry_after", None)
        if retry_after is not None:  # refused for too many failures: 429, and when to come back
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response


class LogoutView(auth_views.LogoutView):
    """POST only (Django refuses GET): a link or an image cannot sign someone out."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetRequestForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    @property
    def extra_email_context(self) -> dict[str, Any]:  # type: ignore[override]
        # Links use the configured public URL, never the request's Host header (which a client chooses).
        return {"site_url": settings.SITE_URL}


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """A link of a removed (deactivated) teammate is as invalid as a forged one."""

    def get_user(self, uidb64: str) -> Any:
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None


class InviteAcceptView(PasswordResetConfirmView):
    """The invited teammate chooses a password, is signed in and lands on their home page.

    Django's reset view already does what an invite needs: the token is single-use (it hashes the
    password), expires after PASSWORD_RESET_TIMEOUT, and is moved out of the URL before the form shows.
    """

    template_name = "registration/invite_accept.html"
    post_reset_login = True
    success_url = reverse_lazy("home")

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, "Welcome aboard! Your password is set and you are signed in.")
        return response
