"""The statuses a tenant configures: dispositions (a conversation's outcome, which open consoles are told of)
and pause reasons (why an agent is paused)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents.models import Disposition, PauseReason
from agents.services._common import delete_unless_protected
from contactcenter.models import Tenant
from contactcenter.realtime import publish_on_commit, tenant_agents_group
from contactcenter.services import validated_save


@transaction.atomic
def disposition_save(*, tenant: Tenant, instance: Disposition | None = None, **fields: Any) -> Disposition:
    disposition = validated_save(instance or Disposition(tenant=tenant), **fields)
    _dispositions_publish(disposition.tenant_id)
    return disposition


def active_disposition_list(*, tenant_id: int) -> list[dict[str, Any]]:
    """The outcomes an agent may pick, in the agent's order (`hello.dispositions`, `dispositions.updated`)."""
    return list(Disposition.objects.for_tenant(tenant_id).filter(is_active=True).values("id", "name"))


def _dispositions_publish(tenant_id: int) -> None:
    """Tells open consoles the whole active list, read once this commits.

    Read after the commit, not in the transaction: two admins saving at once each send a list that holds
    both changes. The list is small (names and ids), so every event carries the full state, as hello does.
    """
    transaction.on_commit(
        lambda: publish_on_commit(
            group=tenant_agents_group(tenant_id),
            event={"type": "dispositions.updated", "dispositions": active_disposition_list(tenant_id=tenant_id)},
        )
    )


def disposition_delete(*, disposition: Disposition) -> None:
    """Refused once a conversation was closed with it: deactivate it instead, so reports keep their outcome."""
    tenant_id = disposition.tenant_id
    delete_unless_protected(
        disposition, "Conversations were closed with this disposition: make it inactive instead of deleting it."
    )
    _dispositions_publish(tenant_id)


@transaction.atomic
def pause_reason_save(*, tenant: Tenant, instance: PauseReason | None = None, **fields: Any) -> PauseReason:
    return validated_save(instance or PauseReason(tenant=tenant), **fields)


def pause_reason_delete(*, pause_reason: PauseReason) -> None:
    """Agents paused for this reason stay paused, without a reason."""
    delete_unless_protected(pause_reason, "This pause reason is in use.")
