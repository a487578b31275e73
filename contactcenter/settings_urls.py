"""The admin's settings pages, one per resource, gathered from the apps that own them."""

from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/"), name="settings-home"),
]
