"""Routes of the widget's JSON API, mounted at /widget/api/ (docs/protocol.md §6)."""

from django.urls import path

from chat import widget_api

urlpatterns = [
    path("attachments/<int:attachment_id>/", widget_api.widget_attachment, name="widget-api-attachment"),
    path("<str:public_key>/config", widget_api.widget_config, name="widget-api-config"),
    path("<str:public_key>/session", widget_api.widget_session, name="widget-api-session"),
    path("<str:public_key>/sessions", widget_api.widget_session_start, name="widget-api-sessions"),
    path("<str:public_key>/uploads", widget_api.widget_upload, name="widget-api-upload"),
    path("<str:public_key>/auth-code", widget_api.widget_auth_code, name="widget-api-auth-code"),
    path("<str:public_key>/identify", widget_api.widget_identify, name="widget-api-identify"),
    path("<str:public_key>/history", widget_api.widget_history, name="widget-api-history"),
]
