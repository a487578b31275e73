"""Periodic work: one idempotent sweep over every deadline column, run by Celery beat."""

from __future__ import annotations

from celery import shared_task

from agents.services import presence_sweep


@shared_task(name="contactcenter.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    return {"agents_offline": presence_sweep()}
