"""The sandbox outbox page (off unless settings.SANDBOX_OUTBOX)."""

from django.urls import path

from channels_switch import sandbox_views

urlpatterns = [
    path("", sandbox_views.SandboxOutboxView.as_view(), name="sandbox-outbox"),
    path("customer/", sandbox_views.SandboxCustomerWritesView.as_view(), name="sandbox-customer-writes"),
    path("messages/<int:pk>/read/", sandbox_views.SandboxMarkReadView.as_view(), name="sandbox-mark-read"),
]
