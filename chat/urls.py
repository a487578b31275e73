"""Page routes of the chat app: the widget's iframe page, its hosted chat page and the demo host page."""

from django.urls import path

from chat import views

urlpatterns = [
    path("widget/<str:public_key>/", views.widget_frame, name="widget-frame"),
    path("chat/<str:public_key>/", views.widget_hosted, name="widget-hosted"),
    path("demo/", views.demo_host, name="demo-host"),
]
