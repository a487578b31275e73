"""Files customers send on SMS (MMS) and WhatsApp (those agents send go out as links: media_links).

A customer's photo, voice note or document is held by Twilio until fetched: an InboundMedia row is written with
the inbound message, a task fetches it (with the account's credentials, from Twilio's API host only) and keeps
it as an attachment on a message of its own in the conversation, within the conversation's limits; the sweep
re-drives rows a lost task or a dead worker left.
"""

from __future__ import annotations

import logging
import mimetypes
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_switch.models import ChannelConnector, ConnectorKind, InboundMedia, MediaState
from channels_switch.providers import ProviderError, provider_media_fetch
from channels_switch.services.relay import backoff_seconds
from chat.models import Conversation
from chat.services import attachment_receive, message_receive, system_notice_post
from contactcenter.errors import ApplicationError

logger = logging.getLogger(__name__)

MEDIA_MAX_ATTEMPTS = 6
FETCHING_LEASE = timedelta(seconds=90)
TRIGGER_GRACE = timedelta(seconds=20)
SWEEP_BATCH = 100
# The extension a kept file is named with, so that its name and its content agree.
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "text/plain": "txt",
}


def inbound_media_record(
    *, connector: ChannelConnector, conversation: Conversation, provider_id: str, media: list[tuple[str, str]]
) -> list[InboundMedia]:
    """The files of an inbound message (its MediaUrlN and MediaContentTypeN), written in the caller's
    transaction; each is fetched once that commits."""
    rows = []
    for index, (url, content_type) in enumerate(media):
        try:
            with transaction.atomic():
                row = InboundMedia.objects.create(
                    tenant_id=connector.tenant_id,
                    connector=connector,
                    conversation=conversation,
                    provider_id=provider_id,
                    index=index,
                    url=url[:500],
                    content_type=content_type[:100],
                    next_attempt_at=timezone.now(),
                )
        except IntegrityError:  # a repeat of the webhook: the row is there already
            continue
        rows.append(row)
        transaction.on_commit(partial(_trigger, row.pk))
    return rows


def _trigger(media_id: int, countdown: float | None = None) -> None:
    from channels_switch.tasks import fetch_media

    if countdown is None:
        fetch_media.delay(media_id)
    elif not settings.CELERY_TASK_ALWAYS_EAGER:
        fetch_media.apply_async((media_id,), countdown=countdown)


def _claim(media_id: int) -> InboundMedia | None:
    now = timezone.now()
    with transaction.atomic():
        row = (
            InboundMedia.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connector")
            .filter(pk=media_id, state=MediaState.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if row is None:
            return None
        row.state, row.fetching_since, row.attempts = MediaState.FETCHING, now, row.attempts + 1
        row.save(update_fields=["state", "fetching_since", "attempts"])
    return row


def _filename(row: InboundMedia, content_type: str) -> str:
    what = "whatsapp" if row.connector.kind == ConnectorKind.WHATSAPP else "mms"
    extension = EXTENSIONS.get(content_type) or (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")
    return f"{what}-{row.provider_id[-8:]}-{row.index + 1}.{extension}"


def inbound_media_fetch(*, media_id: int) -> str:
    """Fetches one file a customer sent and keeps it on a message of its own; returns what became of it."""
    row = _claim(media_id)
    if row is None:
        return "skipped"
    try:
        content, fetched_type = provider_media_fetch(row.connector, row.url, row.content_type)
    except ProviderError as exc:
        return _failed(row, exc.message, retry=exc.retryable)
    content_type = fetched_type or row.content_type
    with transaction.atomic():
        current = InboundMedia.objects.select_for_update().filter(pk=row.pk, state=MediaState.FETCHING).first()
        if current is None or current.fetching_since != row.fetching_since:
            return "superseded"
        conversation = Conversation.objects.select_for_update().get(pk=row.conversation_id, tenant_id=row.tenant_id)
        try:  # refused before anything is stored
            attachment = attachment_receive(
                conversation=conversation,
                filename=_filename(row, content_type),
                content=content,
                declared_type=content_type,
            )
        except ApplicationError as exc:
            refused = exc.message
        else:
            client_id = f"{row.provider_id}/{row.index}"
            message = message_receive(conversation=conversation, body="", client_id=client_id, attachments=[attachment])
            current.state, current.message, current.error = MediaState.DONE, message, ""
            current.save(update_fields=["state", "message", "error"])
            return "kept"
    return _failed(row, refused, retry=False)


def _failed(row: InboundMedia, reason: str, *, retry: bool) -> str:
    with transaction.atomic():
        current = InboundMedia.objects.select_for_update().filter(pk=row.pk, state=MediaState.FETCHING).first()
        if current is None or current.fetching_since != row.fetching_since:
            return "superseded"
        current.error = reason[:300]
        if retry and current.attempts < MEDIA_MAX_ATTEMPTS:
            wait = backoff_seconds(current.attempts)
            current.state, current.next_attempt_at = MediaState.PENDING, timezone.now() + timedelta(seconds=wait)
            current.save(update_fields=["state", "next_attempt_at", "error"])
            transaction.on_commit(lambda: _trigger(current.pk, countdown=wait))
            return "retry"
        current.state = MediaState.FAILED
        current.save(update_fields=["state", "error"])
        conversation = Conversation.objects.select_for_update().get(pk=row.conversation_id, tenant_id=row.tenant_id)
        kind = row.content_type or "a file"
        system_notice_post(
            conversation=conversation,
            event="media.not_kept",
            body=f"The customer sent {kind} that could not be kept: {reason}",
            event_data={"content_type": row.content_type, "reason": reason[:300]},
        )
    return "failed"


def inbound_media_sweep() -> dict[str, Any]:
    """The sweep's pass over inbound files: a fetch a dead worker left is made due again, and it and the due rows
    whose task was lost are triggered again."""
    now = timezone.now()
    stuck = list(
        InboundMedia.objects.filter(state=MediaState.FETCHING, fetching_since__lt=now - FETCHING_LEASE).values_list(
            "pk", flat=True
        )[:SWEEP_BATCH]
    )
    InboundMedia.objects.filter(pk__in=stuck, state=MediaState.FETCHING).update(
        state=MediaState.PENDING, next_attempt_at=now
    )
    grace = timedelta(0) if settings.CELERY_TASK_ALWAYS_EAGER else TRIGGER_GRACE
    overdue = list(
        InboundMedia.objects.filter(state=MediaState.PENDING, next_attempt_at__lte=now - grace)
        .exclude(pk__in=stuck)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for media_id in stuck + overdue:
        _trigger(media_id)
    return {"media_retriggered": len(stuck) + len(overdue), "media_released": len(stuck)}
