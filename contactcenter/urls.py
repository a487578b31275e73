"""Root URL configuration."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from contactcenter import views

admin.site.has_permission = lambda request: bool(request.user.is_active and request.user.is_superuser)  # type: ignore[method-assign]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("contactcenter.account_urls")),
    path("settings/", include("contactcenter.settings_urls")),
    path("widget/api/", include("chat.widget_urls")),
    path("console/api/", include("agents.console_urls")),
    path("console/", include("agents.urls")),
    path("", include("chat.urls")),
    path("api/v1/", include("contactcenter.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
