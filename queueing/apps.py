"""App config."""

from django.apps import AppConfig


class QueueingConfig(AppConfig):
    name = "queueing"

    def ready(self) -> None:
        from chat.signals import waiting_message_stored
        from queueing.receivers import on_waiting_message_stored

        waiting_message_stored.connect(on_waiting_message_stored, dispatch_uid="queueing.waiting_preview")
