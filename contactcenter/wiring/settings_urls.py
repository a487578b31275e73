"""The admin's settings pages, one per resource, gathered from the apps that own them."""

from django.urls import path
from django.views.generic import RedirectView

from agents import settings_views as agents_views
from channels_switch import settings_views as channels_views
from chat import settings_views as chat_views
from contactcenter import settings_views as core_views
from queueing import settings_views as queueing_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="settings-widgets-list"), name="settings-home"),
    # widgets
    path("widgets/", chat_views.WidgetListView.as_view(), name="settings-widgets-list"),
    path("widgets/new/", chat_views.WidgetFormView.as_view(), name="settings-widgets-create"),
    path("widgets/<int:pk>/", chat_views.WidgetFormView.as_view(), name="settings-widgets-edit"),
    path("widgets/<int:pk>/survey/", chat_views.WidgetSurveyView.as_view(), name="settings-widgets-survey"),
    path("widgets/<int:pk>/switching/", chat_views.WidgetSwitchingView.as_view(), name="settings-widgets-switching"),
    path("widgets/<int:pk>/hours/", chat_views.WidgetHoursView.as_view(), name="settings-widgets-hours"),
    path("widgets/<int:pk>/identity/", chat_views.WidgetIdentityView.as_view(), name="settings-widgets-identity"),
    path("widgets/<int:pk>/delete/", chat_views.WidgetDeleteView.as_view(), name="settings-widgets-delete"),
    # queues
    path("queues/", queueing_views.QueueListView.as_view(), name="settings-queues-list"),
    path("queues/new/", queueing_views.QueueFormView.as_view(), name="settings-queues-create"),
    path("queues/<int:pk>/", queueing_views.QueueFormView.as_view(), name="settings-queues-edit"),
    path("queues/<int:pk>/delete/", queueing_views.QueueDeleteView.as_view(), name="settings-queues-delete"),
    # teammates
    path("agents/", agents_views.AgentListView.as_view(), name="settings-agents-list"),
    path("agents/invite/", agents_views.AgentInviteView.as_view(), name="settings-agents-create"),
    path("agents/<int:pk>/", agents_views.AgentEditView.as_view(), name="settings-agents-edit"),
    path("agents/<int:pk>/remove/", agents_views.AgentRemoveView.as_view(), name="settings-agents-delete"),
    path("agents/<int:pk>/resend/", agents_views.AgentResendInviteView.as_view(), name="settings-agents-resend"),
    # canned templates
    path("templates/", agents_views.TemplateListView.as_view(), name="settings-templates-list"),
    path("templates/new/", agents_views.TemplateFormView.as_view(), name="settings-templates-create"),
    path("templates/<int:pk>/", agents_views.TemplateFormView.as_view(), name="settings-templates-edit"),
    path("templates/<int:pk>/delete/", agents_views.TemplateDeleteView.as_view(), name="settings-templates-delete"),
    # dispositions
    path("dispositions/", agents_views.DispositionListView.as_view(), name="settings-dispositions-list"),
    path("dispositions/new/", agents_views.DispositionFormView.as_view(), name="settings-dispositions-create"),
    path("dispositions/<int:pk>/", agents_views.DispositionFormView.as_view(), name="settings-dispositions-edit"),
    path(
        "dispositions/<int:pk>/delete/",
        agents_views.DispositionDeleteView.as_view(),
        name="settings-dispositions-delete",
    ),
    # pause reasons
    path("pause-reasons/", agents_views.PauseReasonListView.as_view(), name="settings-pause-reasons-list"),
    path("pause-reasons/new/", agents_views.PauseReasonFormView.as_view(), name="settings-pause-reasons-create"),
    path("pause-reasons/<int:pk>/", agents_views.PauseReasonFormView.as_view(), name="settings-pause-reasons-edit"),
    path(
        "pause-reasons/<int:pk>/delete/",
        agents_views.PauseReasonDeleteView.as_view(),
        name="settings-pause-reasons-delete",
    ),
    # channel connectors
    path("channels/", channels_views.ChannelListView.as_view(), name="settings-channels-list"),
    path("channels/new/", channels_views.ChannelFormView.as_view(), name="settings-channels-create"),
    path("channels/<int:pk>/", channels_views.ChannelFormView.as_view(), name="settings-channels-edit"),
    path("channels/<int:pk>/delete/", channels_views.ChannelDeleteView.as_view(), name="settings-channels-delete"),
    path("channels/<int:pk>/test/", channels_views.ChannelTestView.as_view(), name="settings-channels-test"),
    # WhatsApp templates, under Channels
    path(
        "channels/whatsapp-templates/",
        channels_views.WhatsAppTemplateListView.as_view(),
        name="settings-whatsapp-templates-list",
    ),
    path(
        "channels/whatsapp-templates/new/",
        channels_views.WhatsAppTemplateFormView.as_view(),
        name="settings-whatsapp-templates-create",
    ),
    path(
        "channels/whatsapp-templates/<int:pk>/",
        channels_views.WhatsAppTemplateFormView.as_view(),
        name="settings-whatsapp-templates-edit",
    ),
    path(
        "channels/whatsapp-templates/<int:pk>/delete/",
        channels_views.WhatsAppTemplateDeleteView.as_view(),
        name="settings-whatsapp-templates-delete",
    ),
    # API keys
    path("api-keys/", core_views.ApiKeyListView.as_view(), name="settings-apikeys-list"),
    path("api-keys/new/", core_views.ApiKeyCreateView.as_view(), name="settings-apikeys-create"),
    path("api-keys/<int:pk>/revoke/", core_views.ApiKeyRevokeView.as_view(), name="settings-apikeys-revoke"),
    # outbound webhooks
    path("webhooks/", core_views.WebhookListView.as_view(), name="settings-webhooks-list"),
    path("webhooks/new/", core_views.WebhookCreateView.as_view(), name="settings-webhooks-create"),
    path("webhooks/<int:pk>/", core_views.WebhookDetailView.as_view(), name="settings-webhooks-detail"),
    path("webhooks/<int:pk>/rotate/", core_views.WebhookRotateView.as_view(), name="settings-webhooks-rotate"),
    path("webhooks/<int:pk>/enabled/", core_views.WebhookToggleView.as_view(), name="settings-webhooks-toggle"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_id>/replay/",
        core_views.WebhookReplayView.as_view(),
        name="settings-webhooks-replay",
    ),
    path("webhooks/<int:pk>/delete/", core_views.WebhookDeleteView.as_view(), name="settings-webhooks-delete"),
]
