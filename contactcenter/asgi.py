"""ASGI entry point: HTTP through Django, websockets through Channels with origin and session checks."""

import gc
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

# The collector's full passes walk every tracked object while every socket of the process waits: with
# 2,000 sockets that was up to 0.7 s, the p99 of a busy server. The start-up objects (Django, the apps, the
# URL and template machinery) are frozen out of its view, and young collections come every 10,000
# allocations instead of 700, so full passes come far less often. Figures: bench/README.md.
gc.collect()
gc.freeze()
gc.set_threshold(10_000, 10, 10)
