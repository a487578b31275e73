"""The Celery application; eager (in-process) when no broker is configured."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # each installed app's tasks.py
app.autodiscover_tasks(["contactcenter.wiring"])  # the sweep that calls every app's sweep


@worker_process_init.connect  # each process of the prefork pool, after its fork
@worker_init.connect  # the worker's own process: the threads and solo pools run tasks there
def _start_publisher(**_: object) -> None:
    """Events a task commits leave through one background loop per process, batched and in commit order, instead
    of one event loop per event (contactcenter.realtime.start_background_publisher)."""
    from contactcenter.realtime import start_background_publisher

    start_background_publisher()
