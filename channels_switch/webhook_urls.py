"""Provider webhooks, one URL per connector (its webhook key)."""

from django.urls import path

from channels_switch import webhooks

urlpatterns = [
    path("twilio/<str:key>/inbound/", webhooks.twilio_inbound, name="hooks-twilio-inbound"),
    path("twilio/<str:key>/status/", webhooks.twilio_status, name="hooks-twilio-status"),
    path("email/<str:key>/inbound/", webhooks.email_inbound, name="hooks-email-inbound"),
    path("email/<str:key>/tracking/", webhooks.email_tracking, name="hooks-email-tracking"),
    path("media/<str:token>/", webhooks.media_file, name="hooks-media"),
    path("sandbox/<str:key>/inbound/", webhooks.sandbox_inbound, name="hooks-sandbox-inbound"),
]
