"""App config."""

from django.apps import AppConfig


class ChannelsSwitchConfig(AppConfig):
    name = "channels_switch"

    def ready(self) -> None:
        from channels_switch.receivers import on_outbound_message_stored
        from chat.signals import outbound_message_stored

        outbound_message_stored.connect(on_outbound_message_stored, dispatch_uid="channels_switch.delivery")
