"""Page routes of the chat app: the widget's iframe page and the demo host page."""

from django.urls import path

from chat import views

urlpatterns = [
    path("widget/<str:public_key>/", views.widget_frame, name="widget-frame"),
    path("demo/", views.demo_host, name="demo-host"),
]
