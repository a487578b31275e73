"""The project's wiring: what puts the apps together, and so the only part of `contactcenter/` that imports them.

Here: the ASGI application (`routing.py`: both sockets behind the origin check, the server loop bound, the
embedded sweeper started), the REST and settings URL tables, the one periodic sweep that calls each app's
sweep (`tasks.py`, run by beat or by `sweeper.py` in embedded mode) and the demo data. The project's entry
points (`settings.py`, `urls.py`, `asgi.py`, `celery.py`, the management commands) reach the apps through
this package; nothing else imports it. The rest of `contactcenter/` is the core, which imports no app
(tests/test_architecture.py checks both).
"""
