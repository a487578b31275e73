"""Switchboard project package: settings, routing, Celery app and the tenancy core."""

from .celery import app as celery_app

__all__ = ("celery_app",)
