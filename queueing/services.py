"""State changes of queueing: queues, their members and the widgets routed to them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from chat.models import Widget
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
    for user in wanted:
        QueueMember.objects.get_or_create(tenant=queue.tenant, queue=queue, user=user)


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


def queue_delete(*, queue: Queue) -> None:
    if queue.routes.exists():
        raise ApplicationError("queue_in_use", "Route this queue's widgets elsewhere before deleting it.", status=409)
    queue.delete()
