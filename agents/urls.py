"""Page routes of the agent console, included under /console/."""

from django.urls import path

from agents import views

urlpatterns = [
    path("", views.console, name="console"),
    path("contacts/<int:contact_id>/", views.contact, name="console-contact"),
    path("contacts/<int:contact_id>/merge", views.contact_merge_form, name="console-contact-merge"),
    path("conversations/", views.conversations, name="console-conversations"),
]
