"""How email conversations hold together: each has its own reply address (a signed token in the local part);
each outbound mail carries its Message-ID, that Reply-To and, after the first, In-Reply-To and References; an
inbound mail is threaded back by the reply address it was sent to first, then by those headers.

The reply token is `c<conversation id>-<20 hex of an HMAC>` over the tenant and the conversation with
SECRET_KEY (SECRET_KEY_FALLBACKS still accepted after a rotation): lower case, since mail systems may fold the
case of a local part, and unforgeable, so one tenant's (or one customer's) reply address never reaches
another's conversation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from channels_switch.models import ChannelConnector, ConnectorKind, Delivery, InboundReceipt
from channels_switch.providers import OutgoingFile
from chat.models import Attachment, Conversation, ConversationStatus
from contactcenter.models import Tenant

TOKEN_SALT = "switchboard.email.reply-address"
TOKEN = re.compile(r"(?:^|[+.])c(\d{1,18})-([0-9a-f]{20})$")
OUR_MESSAGE_ID = re.compile(r"^<d(\d{1,18})\.t(\d{1,18})@[^>]+>$")
MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
REFERENCES_KEPT = 10
SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|antw)\s*:\s*)+", re.IGNORECASE)


def _token(tenant_id: int, conversation_id: int, secret: str | None = None) -> str:
    mac = salted_hmac(TOKEN_SALT, f"{tenant_id}:{conversation_id}", secret=secret, algorithm="sha256")
    return f"c{conversation_id}-{mac.hexdigest()[:20]}"


def reply_address(connector: ChannelConnector, conversation_id: int) -> str:
    """Where the customer's replies to this conversation go: plus-addressed on the connector's inbound
    address (support+c12-…@in.example.com), or on its inbound domain (c12-…@in.example.com), or, with neither,
    on the address mail is sent from."""
    token = _token(connector.tenant_id, conversation_id)
    inbound = connector.inbound_address or connector.from_address
    if "@" in inbound:
        local, _, domain = inbound.rpartition("@")
        return f"{local}+{token}@{domain}"
    return f"{token}@{inbound}"


def conversation_by_reply_address(tenant_id: int, addresses: Iterable[str]) -> int | None:
    """The conversation whose reply address is among `addresses` (To, Cc, the envelope's recipient), if its
    token is this tenant's."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    for address in addresses:
        match = TOKEN.search(address.rpartition("@")[0].lower())
        if match is None:
            continue
        conversation_id = int(match[1])
        given = f"c{match[1]}-{match[2]}"
        if any(constant_time_compare(_token(tenant_id, conversation_id, secret), given) for secret in secrets):
            return conversation_id
    return None


def message_ids(header: str) -> list[str]:
    """The <message ids> in an In-Reply-To or References header, in order."""
    return MESSAGE_ID.findall(header or "")


def conversation_by_headers(tenant_id: int, referenced: list[str]) -> int | None:
    """The conversation an inbound mail answers, by the Message-IDs it names (In-Reply-To, References),
    newest first: one of ours (a delivery of this tenant) or an earlier mail from the customer."""
    for message_id in reversed(referenced):
        ours = OUR_MESSAGE_ID.match(message_id)
        if ours is not None:
            if int(ours[2]) != tenant_id:
                continue
            found = (
                Delivery.objects.for_tenant(tenant_id)
                .filter(pk=int(ours[1]), channel=ConnectorKind.EMAIL)
                .values_list("message__conversation_id", flat=True)
                .first()
            )
        else:
            found = (
                InboundReceipt.objects.for_tenant(tenant_id)
                .filter(email_message_id=message_id, message__isnull=False)
                .values_list("message__conversation_id", flat=True)
                .first()
            )
        if found is not None:
            return found
    return None


def open_conversation(tenant_id: int, conversation_id: int | None) -> Conversation | None:
    """The conversation, if it is this tenant's, on email and not closed (a reply to a closed one starts anew)."""
    if conversation_id is None:
        return None
    return (
        Conversation.objects.for_tenant(tenant_id)
        .filter(pk=conversation_id, channel=ConnectorKind.EMAIL)
        .exclude(status=ConversationStatus.CLOSED)
        .select_related("contact")
        .first()
    )


def message_id_header(delivery: Delivery, from_address: str) -> str:
    """The Message-ID of a delivery's email: the same on every attempt, so a resend after a crash that had in
    fact gone out is one message to mail clients, which fold copies with one Message-ID."""
    domain = from_address.rpartition("@")[2] or "switchboard.invalid"
    return f"<d{delivery.pk}.t{delivery.tenant_id}@{domain}>"


def _thread(delivery: Delivery, connector: ChannelConnector) -> list[str]:
    """The Message-IDs of the conversation's mails before this one, both ways, oldest first."""
    conversation_id = delivery.message.conversation_id
    earlier_out = Delivery.objects.for_tenant(delivery.tenant_id).filter(
        message__conversation_id=conversation_id, channel=ConnectorKind.EMAIL, pk__lt=delivery.pk
    )
    earlier_in = InboundReceipt.objects.for_tenant(delivery.tenant_id).filter(
        message__conversation_id=conversation_id, message__seq__lt=delivery.message.seq
    )
    mails = [
        (d.message.seq, message_id_header(d, connector.from_address)) for d in earlier_out.select_related("message")
    ]
    mails += [
        (seq, mid)
        for seq, mid in earlier_in.exclude(email_message_id="").values_list("message__seq", "email_message_id")
    ]
    return [mid for _, mid in sorted(mails)][-REFERENCES_KEPT:]


def email_subject(delivery: Delivery) -> str:
    """An answer to the customer's mail keeps its subject (Re: …); a conversation that came from the web chat
    is named for the contact center."""
    first_subject = (
        InboundReceipt.objects.for_tenant(delivery.tenant_id)
        .filter(message__conversation_id=delivery.message.conversation_id)
        .exclude(subject="")
        .order_by("pk")
        .values_list("subject", flat=True)
        .first()
    )
    if first_subject:
        return "Re: " + SUBJECT_PREFIX.sub("", first_subject)[:280]
    name = Tenant.objects.filter(pk=delivery.tenant_id).values_list("name", flat=True).first() or "us"
    return f"Your conversation with {name}"


def email_headers(delivery: Delivery, connector: ChannelConnector) -> dict[str, str]:
    """Message-ID, Reply-To (the conversation's reply address) and, answering earlier mail, In-Reply-To and
    References."""
    headers = {
        "Message-ID": message_id_header(delivery, connector.from_address),
        "Reply-To": reply_address(connector, delivery.message.conversation_id),
    }
    thread = _thread(delivery, connector)
    if thread:
        headers["In-Reply-To"] = thread[-1]
        headers["References"] = " ".join(thread)
    return headers


def email_files(delivery: Delivery) -> list[OutgoingFile]:
    """The files the agent attached to the message, read from storage."""
    files = []
    for attachment in Attachment.objects.for_tenant(delivery.tenant_id).filter(message_id=delivery.message_id):
        with attachment.file.open("rb") as handle:
            files.append(OutgoingFile(attachment.filename, attachment.content_type, handle.read()))
    return files
