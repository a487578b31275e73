"""Helpers the agents services share."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from contactcenter.errors import ApplicationError


def delete_unless_protected(instance: Any, in_use_message: str) -> None:
    try:
        with transaction.atomic():
            instance.delete()
    except ProtectedError as exc:
        raise ApplicationError("in_use", in_use_message, status=409) from exc
