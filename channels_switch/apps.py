"""App config."""

from django.apps import AppConfig


class ChannelsSwitchConfig(AppConfig):
    name = "channels_switch"
