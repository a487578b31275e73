"""Files agents send on SMS (MMS) and WhatsApp: Twilio fetches a message's files itself, so each goes out as a
signed, expiring public link to that one attachment, served by the media hook (webhooks.media_file)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from channels_switch.models import Delivery
from channels_switch.providers import OutgoingFile
from chat.models import Attachment

LINK_SALT = "switchboard.media-link"
LINK_MAX_AGE = timedelta(days=3)  # Twilio fetches at once; a retry of the send within days still finds it


def media_link(attachment: Attachment) -> str:
    """A public address of this one file, signed and valid for LINK_MAX_AGE, for the provider to fetch."""
    token = signing.dumps([attachment.tenant_id, attachment.pk], salt=LINK_SALT, compress=False)
    return settings.SITE_URL + reverse("hooks-media", kwargs={"token": token})


def media_link_attachment(token: str) -> Attachment | None:
    """The attachment a media link names, if its signature holds and it has not expired."""
    try:
        tenant_id, attachment_id = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return Attachment.objects.for_tenant(int(tenant_id)).filter(pk=int(attachment_id)).first()


def media_files(delivery: Delivery) -> list[OutgoingFile]:
    """The files of an agent's SMS or WhatsApp message, as links the provider fetches."""
    attachments = Attachment.objects.for_tenant(delivery.tenant_id).filter(message_id=delivery.message_id)
    return [OutgoingFile(a.filename, a.content_type, b"", public_url=media_link(a)) for a in attachments]
