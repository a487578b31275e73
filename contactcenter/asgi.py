"""ASGI entry point: HTTP through Django, websockets through Channels with origin and session checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")
django_asgi_app = get_asgi_application()

from contactcenter.routing import build_application  # noqa: E402  (needs the app registry loaded)

application = build_application(django_asgi_app)
