"""Queues: saving one, its members, the widgets routed to it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from chat.models import Widget
from chat.services import (
    widget_save,
)
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Membership
from contactcenter.services import validated_save
from queueing.models import Queue, QueueMember, QueueRoute


@transaction.atomic
def queue_save(*, tenant: Any, instance: Queue | None = None, **fields: Any) -> Queue:
    return validated_save(instance or Queue(tenant=tenant), **fields)


def _tenant_users(queue: Queue, users: Iterable[User | int]) -> list[User]:
    ids = {u if isinstance(u, int) else u.pk for u in users}
    members = list(Membership.objects.for_tenant(queue.tenant).filter(user_id__in=ids).select_related("user"))
    if len(members) != len(ids):
        raise NotFound("agent")  # another tenant's user is the same as no user
    return [m.user for m in members]


@transaction.atomic
def queue_member_add(*, queue: Queue, user: User | int) -> QueueMember:
    (member_user,) = _tenant_users(queue, [user])
    member, _ = QueueMember.objects.get_or_create(tenant=queue.tenant, queue=queue, user=member_user)
    return member


@transaction.atomic
def queue_member_remove(*, queue: Queue, user: User | int) -> None:
    user_id = user if isinstance(user, int) else user.pk
    QueueMember.objects.for_tenant(queue.tenant).filter(queue=queue, user_id=user_id).delete()


@transaction.atomic
def queue_members_set(*, queue: Queue, users: Iterable[User | int]) -> None:
    wanted = _tenant_users(queue, users)
    QueueMember.objects.for_tenant(queue.tenant).filter(queue=queue).exclude(user__in=wanted).delete()
    QueueMember.objects.bulk_create(
        [QueueMember(tenant=queue.tenant, queue=queue, user=user) for user in wanted], ignore_conflicts=True
    )


@transaction.atomic
def queue_widgets_set(*, queue: Queue, widgets: Iterable[Widget | int]) -> None:
    """Routes these widgets to this queue (a widget routes to one queue: it moves here)."""
    ids = {w if isinstance(w, int) else w.pk for w in widgets}
    found = list(Widget.objects.for_tenant(queue.tenant).filter(pk__in=ids))
    if len(found) != len(ids):
        raise NotFound("widget")
    QueueRoute.objects.for_tenant(queue.tenant).filter(queue=queue).exclude(widget__in=found).delete()
    for widget in found:
        QueueRoute.objects.update_or_create(tenant=queue.tenant, widget=widget, defaults={"queue": queue})


@transaction.atomic
def widget_save_routed(*, tenant: Any, instance: Widget | None = None, **fields: Any) -> Widget:
    """Saves a widget; a new one is routed to the tenant's queue when there is exactly one.

    A widget routed nowhere tells every visitor "No one is available", so a new widget should not start
    that way when the choice is obvious. With no queue or several it stays unrouted (the settings pages warn).
    """
    widget = widget_save(tenant=tenant, instance=instance, **fields)
    if instance is None:
        queues = list(Queue.objects.for_tenant(tenant).order_by("pk")[:2])
        if len(queues) == 1:
            QueueRoute.objects.get_or_create(tenant=tenant, widget=widget, defaults={"queue": queues[0]})
    return widget


def queue_delete(*, queue: Queue) -> None:
    if queue.routes.exists():
        raise ApplicationError("queue_in_use", "Route this queue's widgets elsewhere before deleting it.", status=409)
    queue.delete()


@transaction.atomic
def queue_configure(
    *,
    tenant: Any,
    instance: Queue | None = None,
    members: Iterable[User | int] = (),
    widgets: Iterable[Widget | int] = (),
    **fields: Any,
) -> Queue:
    """Saves a queue with its member agents and routed widgets in one go (the settings page's form)."""
    queue = queue_save(tenant=tenant, instance=instance, **fields)
    queue_members_set(queue=queue, users=members)
    queue_widgets_set(queue=queue, widgets=widgets)
    return queue
