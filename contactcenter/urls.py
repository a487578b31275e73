"""Root URL configuration."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from contactcenter import views

admin.site.has_permission = lambda request: bool(request.user.is_active and request.user.is_superuser)  # type: ignore[method-assign]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on every page that names no icon (the console, Django's admin, API docs).
    path(
        "favicon.ico",
        cache_control(max_age=86400, public=True)(serve),
        {"path": "favicon.ico", "document_root": settings.BASE_DIR / "static"},
        name="favicon",
    ),
    path("accounts/", include("contactcenter.account_urls")),
    path("settings/", include("contactcenter.wiring.settings_urls")),
    path("widget/api/", include("chat.widget_urls")),
    path("console/api/", include("agents.console_urls")),
    path("console/", include("agents.urls")),
    path("supervision/", include("agents.supervision_urls")),
    path("", include("chat.urls")),
    path("hooks/", include("channels_switch.webhook_urls")),
    path("sandbox/", include("channels_switch.sandbox_urls")),
    path("api/v1/", include("contactcenter.wiring.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file (?script), so the page needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
