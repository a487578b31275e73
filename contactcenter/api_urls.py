"""REST API v1 routes, gathered from every app's api.py."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
urlpatterns = router.urls
