"""App config of the tenancy core."""

from django.apps import AppConfig
from django.core import checks


class ContactCenterConfig(AppConfig):
    name = "contactcenter"
    verbose_name = "Contact center core"

    def ready(self) -> None:
        from contactcenter.channel_layer import internals_check
        from contactcenter.secretbox import keys_check

        checks.register(internals_check)
        checks.register(keys_check, checks.Tags.security, deploy=True)
