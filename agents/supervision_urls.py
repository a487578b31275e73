"""The supervision page's route, included at /supervision/."""

from django.urls import path

from agents import supervision_views

urlpatterns = [
    path("", supervision_views.supervision, name="supervision"),
]
