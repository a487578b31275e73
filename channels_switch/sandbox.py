"""The sandbox provider's side of its webhook: how it signs what a "customer" answers, and how that is checked.

The sandbox stands in for Twilio and the ESP with no account anywhere, so a reply typed on the sandbox outbox
page travels the way a provider's would: a signed webhook to the connector's URL, checked, then stored by the
same inbound service. Its signature is Twilio's scheme with SHA-256 and a key of its own per connector
(derived from SECRET_KEY and the connector's webhook key), so a sandbox URL can only be fed by this server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile

from channels_switch.models import ChannelConnector, SandboxDirection, SandboxMessage

SIGNATURE_HEADER = "X-Sandbox-Signature"


def _key(connector: ChannelConnector) -> bytes:
    material = f"switchboard sandbox webhook\x00{connector.webhook_key}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), material, hashlib.sha256).digest()


def sandbox_signature(connector: ChannelConnector, url: str, params: Mapping[str, str]) -> str:
    signed = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(_key(connector), signed.encode(), hashlib.sha256).digest()).decode()


def sandbox_signed(connector: ChannelConnector, url: str, params: Mapping[str, str], signature: str) -> bool:
    return bool(signature) and hmac.compare_digest(sandbox_signature(connector, url, params), signature)


@dataclass(frozen=True)
class Thread:
    """One customer's exchange on one sandbox channel, oldest message first."""

    channel: str
    address: str
    messages: list[SandboxMessage]

    @property
    def last_sent(self) -> SandboxMessage | None:
        """The newest message the customer received in it (what a reply answers)."""
        sent = [m for m in self.messages if m.direction == SandboxDirection.OUT]
        return sent[-1] if sent else None


def sandbox_threads(*, tenant_id: int, limit: int = 50) -> list[Thread]:
    """The tenant's sandbox traffic as the customers' phones and mailboxes see it, newest exchange first."""
    rows = (
        SandboxMessage.objects.for_tenant(tenant_id)
        .select_related("delivery__message")
        .order_by("-created_at", "-pk")[:500]
    )
    threads: dict[tuple[str, str], list[SandboxMessage]] = {}
    for row in rows:
        address = row.to_address if row.direction == SandboxDirection.OUT else row.from_address
        threads.setdefault((row.channel, address), []).append(row)
    return [
        Thread(channel=channel, address=address, messages=list(reversed(messages)))
        for (channel, address), messages in list(threads.items())[:limit]
    ]


def sandbox_customer_writes(
    *, connector: ChannelConnector, sender: str, body: str, subject: str = "", filename: str = ""
) -> SandboxMessage:
    """A message a person writes as the customer on the sandbox page: kept on the customer's side, with the id
    the sandbox provider gives it (its MessageSid)."""
    return SandboxMessage.objects.create(
        tenant_id=connector.tenant_id,
        channel=connector.kind,
        direction=SandboxDirection.IN,
        provider_id="SBIN" + secrets.token_hex(14),
        from_address=sender,
        to_address=connector.from_address,
        subject=subject,
        body=body,
        attachment_names=[filename] if filename else [],
    )


SANDBOX_MEDIA = "sandbox:"
SANDBOX_MEDIA_MAX_BYTES = 16 * 1024 * 1024


def sandbox_media_keep(connector: ChannelConnector, upload: UploadedFile) -> str:
    """A file the sandbox's customer sends, held by the sandbox "provider" as Twilio holds a customer's photo
    until it is fetched: its address (`sandbox:<path>`, under the tenant's folder) goes in MediaUrl0."""
    path = default_storage.save(f"sandbox/t{connector.tenant_id}/{secrets.token_hex(16)}", upload)
    return SANDBOX_MEDIA + path


def sandbox_media_read(connector: ChannelConnector, url: str) -> bytes | None:
    """The bytes of a file the sandbox holds for this connector's tenant; None for any other address."""
    path = url.removeprefix(SANDBOX_MEDIA)
    folder = f"sandbox/t{connector.tenant_id}/"
    if not url.startswith(SANDBOX_MEDIA) or not path.startswith(folder) or ".." in path:
        return None
    try:
        with default_storage.open(path, "rb") as handle:
            return bytes(handle.read(SANDBOX_MEDIA_MAX_BYTES + 1))
    except OSError:
        return None
