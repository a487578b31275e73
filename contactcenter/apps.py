"""App config of the tenancy core."""

from django.apps import AppConfig
from django.core import checks


class ContactCenterConfig(AppConfig):
    name = "contactcenter"
    verbose_name = "Contact center core"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from contactcenter.channel_layer import internals_check
        from contactcenter.dbconnections import close_request_connections
        from contactcenter.secretbox import keys_check

        request_finished.connect(close_request_connections, dispatch_uid="contactcenter.close_request_connections")

        checks.register(internals_check)
        checks.register(keys_check, checks.Tags.security, deploy=True)
