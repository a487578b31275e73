"""`manage.py secrets_reseal`: after a new key is put first in SECRETS_KEYS, seals every stored secret with it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from channels_switch.services import connector_secrets_reseal


class Command(BaseCommand):
    help = "Seal every stored provider secret again with the newest key of SECRETS_KEYS (key rotation)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = connector_secrets_reseal()
        self.stdout.write(f"{count} secret(s) sealed with the newest key; the older keys can now be dropped.")
