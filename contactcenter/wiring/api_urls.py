"""REST API v1 routes, gathered from every app's api.py."""

from django.urls import re_path
from rest_framework.routers import DefaultRouter

from agents.api import AgentViewSet, DispositionViewSet, PauseReasonViewSet, TemplateViewSet
from channels_switch.api import (
    ChannelConnectorViewSet,
    ContactAuthCodeViewSet,
    ContactLinkRequestViewSet,
    ConversationStartMixin,
)
from chat.api import ConversationViewSet, WidgetViewSet
from chat.contact_api import ContactMergeViewSet
from contactcenter.api import (
    ApiKeyViewSet,
    ContactIdentityViewSet,
    ContactViewSet,
    WebhookDeliveryViewSet,
    WebhookSubscriptionViewSet,
    api_not_found,
)
from queueing.api import QueueMemberViewSet, QueueViewSet


class ConversationApi(ConversationStartMixin, ConversationViewSet):
    """One path for conversations: chat's reads, and channels_switch's create (an agent-started session)."""

    http_method_names = ["get", "post", "head", "options"]


router = DefaultRouter()
router.register("contacts", ContactViewSet, basename="contact")
router.register(r"contacts/(?P<contact_pk>[^/.]+)/identities", ContactIdentityViewSet, basename="contact-identity")
router.register("widgets", WidgetViewSet, basename="widget")
router.register("queues", QueueViewSet, basename="queue")
router.register(r"queues/(?P<queue_pk>[^/.]+)/members", QueueMemberViewSet, basename="queue-member")
router.register("agents", AgentViewSet, basename="agent")
router.register("templates", TemplateViewSet, basename="template")
router.register("dispositions", DispositionViewSet, basename="disposition")
router.register("pause-reasons", PauseReasonViewSet, basename="pause-reason")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("channels", ChannelConnectorViewSet, basename="channel")
router.register("conversations", ConversationApi, basename="conversation")
router.register("webhooks", WebhookSubscriptionViewSet, basename="webhook")
router.register(r"webhooks/(?P<subscription_pk>[^/.]+)/deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")

urlpatterns = [
    re_path(
        r"^contacts/(?P<pk>[^/.]+)/merge/$",
        ContactMergeViewSet.as_view({"post": "merge"}),  # chat's: it moves conversations
        name="contact-merge",
    ),
    re_path(
        r"^contacts/(?P<pk>[^/.]+)/auth-codes/$",
        ContactAuthCodeViewSet.as_view({"post": "create_code"}),  # channels_switch's: the web chat's sign-in
        name="contact-auth-codes",
    ),
    re_path(
        r"^contacts/(?P<pk>[^/.]+)/link-requests/$",
        ContactLinkRequestViewSet.as_view({"post": "create_links"}),  # channels_switch's: links to its channels
        name="contact-link-requests",
    ),
    *router.urls,
    re_path(r"^.*$", api_not_found, name="api-not-found"),
]  # last: what no route matched
