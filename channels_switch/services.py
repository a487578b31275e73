"""State changes of channel connectors."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from channels_switch.models import PROVIDERS_FOR_KIND, ChannelConnector, ConnectorKind
from contactcenter.errors import ApplicationError
from contactcenter.models import IdentityKind, Tenant
from contactcenter.services import identity_normalise, validated_save


@transaction.atomic
def connector_save(*, tenant: Tenant, instance: ChannelConnector | None = None, **fields: Any) -> ChannelConnector:
    connector = instance or ChannelConnector(tenant=tenant)
    kind = fields.get("kind", connector.kind)
    provider = fields.get("provider", connector.provider)
    if kind in ConnectorKind.values and provider not in {p.value for p in PROVIDERS_FOR_KIND[ConnectorKind(kind)]}:
        message = f"A {kind} connector cannot use {provider}."
        raise ApplicationError("invalid", message, {"provider": [message]})
    if "from_address" in fields and kind in ConnectorKind.values:
        identity_kind = IdentityKind.EMAIL if kind == ConnectorKind.EMAIL else IdentityKind.PHONE
        try:
            fields["from_address"] = identity_normalise(kind=identity_kind, value=fields["from_address"])
        except ApplicationError as exc:
            raise ApplicationError(
                exc.code, exc.message, {"from_address": exc.fields.get("value", [exc.message])}
            ) from exc
    return validated_save(connector, **fields)


@transaction.atomic
def connector_delete(*, connector: ChannelConnector) -> None:
    connector.delete()
