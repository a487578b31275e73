"""ASGI entry point: HTTP through Django, websockets through Channels with origin and session checks."""

import os

from channels.layers import get_channel_layer
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")
django_asgi_app = get_asgi_application()

from contactcenter.middleware import daphne_leaves_bodies_to_django  # noqa: E402
from contactcenter.wiring.routing import build_application  # noqa: E402  (needs the app registry loaded)

# The channel layer is built now, so one that cannot work (channels_redis internals that PubSubChannelLayer
# relies on are gone) stops the server at start-up, by name, rather than failing the first socket.
get_channel_layer()

# Under daphne, a malformed form body reaches Django (and so the one error shape), not Twisted's empty 400.
daphne_leaves_bodies_to_django()

application = build_application(django_asgi_app)
