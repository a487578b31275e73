"""Mail customers send: threaded into its conversation (by the reply address it was sent to, then by the
Message-IDs it answers, then by its sender), stripped of the quoted earlier thread by a reply parser
(mail-parser-reply) while the whole text stays beside it as a file, its attachments kept within the
conversation's limits. An ESP's tracking events move a delivery forward like Twilio's status callbacks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from anymail.inbound import AnymailInboundMessage
from django.db import transaction
from django.utils.html import strip_tags
from mailparser_reply import EmailReplyParser

from channels_switch.models import ChannelConnector
from channels_switch.services.email import (
    conversation_by_headers,
    conversation_by_reply_address,
    message_ids,
    open_conversation,
)
from channels_switch.services.inbound import (
    Inbound,
    address_proved,
    conversation_for_sender,
    delivery_status_update,
    receipt_claim,
)
from channels_switch.services.link_requests import link_request_use
from chat.models import Attachment, Conversation
from chat.services import attachment_original_keep, attachment_receive, message_receive, system_notice_post
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity, IdentityKind
from contactcenter.services import identity_normalise
from queueing.services import conversation_request_on_channel

REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs"]
FILES_KEPT = 10  # attachments of one mail; past that they are listed as not kept
ORIGINAL_FILENAME = "original-email.txt"


@dataclass(frozen=True)
class MailFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Mail:
    """An inbound email as threading needs it, from whichever ESP (or the sandbox) carried it."""

    sender: str
    sender_name: str
    recipients: list[str]  # To, Cc and the envelope's recipient
    subject: str
    text: str  # the whole text, quoted thread included
    message_id: str
    referenced: list[str]  # In-Reply-To and References, oldest first
    files: list[MailFile]


def mail_from_anymail(message: AnymailInboundMessage, envelope_recipient: str = "") -> Mail:
    sender = message.from_email
    recipients = [a.addr_spec for a in [*message.to, *message.cc]]
    if envelope_recipient:
        recipients.append(envelope_recipient)
    html = message.html or ""
    text = message.text if message.text is not None else strip_tags(html)
    referenced = message_ids(message.get("References", "")) + message_ids(message.get("In-Reply-To", ""))
    files = []
    for part in message.attachments:
        content = part.get_content_bytes() or b""
        files.append(MailFile(part.get_filename() or "file", part.get_content_type() or "", content))
    return Mail(
        sender=sender.addr_spec if sender else "",
        sender_name=(sender.display_name if sender else "") or "",
        recipients=recipients,
        subject=str(message.get("Subject", "") or "").strip()[:300],
        text=(text or "").replace("\r\n", "\n"),
        message_id=(message_ids(message.get("Message-ID", "")) or [""])[0],
        referenced=list(dict.fromkeys(referenced)),
        files=files,
    )


def latest_reply(text: str) -> str:
    """What the customer wrote in this mail, without the earlier thread it quotes or the signature."""
    parsed = EmailReplyParser(languages=REPLY_LANGUAGES).read(text)
    return (parsed.latest_reply or "").strip() or text.strip()


def _provider_id(mail: Mail, event_id: str) -> str:
    """The id a repeat of this mail's webhook is known by: its Message-ID (the same whichever ESP retries it),
    else the ESP's event id, else a digest of what it says."""
    if mail.message_id:
        return mail.message_id[:200]
    if event_id:
        return f"event:{event_id}"[:200]
    digest = hashlib.sha256(f"{mail.sender}\n{mail.subject}\n{mail.text}".encode()).hexdigest()
    return f"sha256:{digest}"


def _threaded(connector: ChannelConnector, mail: Mail) -> Conversation | None:
    tenant_id = connector.tenant_id
    by_address = open_conversation(tenant_id, conversation_by_reply_address(tenant_id, mail.recipients))
    if by_address is not None:
        return by_address
    return open_conversation(tenant_id, conversation_by_headers(tenant_id, mail.referenced))


def _store_files(conversation: Conversation, mail: Mail, reply: str) -> tuple[list[Attachment], list[str]]:
    """The mail's attachments that may be kept, stored; the others named with why; and, when the reply parser
    cut the quoted thread, the whole text as a file."""
    kept: list[Attachment] = []
    refused: list[str] = []
    for index, file in enumerate(mail.files):
        if index >= FILES_KEPT:
            refused.append(f"{file.filename} (more than {FILES_KEPT} files in one mail)")
            continue
        try:
            kept.append(
                attachment_receive(
                    conversation=conversation,
                    filename=file.filename,
                    content=file.content,
                    declared_type=file.content_type,
                )
            )
        except ApplicationError as exc:
            refused.append(f"{file.filename} ({exc.message})")
    if reply != mail.text.strip():
        heading = f"From: {mail.sender}\nSubject: {mail.subject}\n\n"
        kept.append(
            attachment_original_keep(conversation=conversation, filename=ORIGINAL_FILENAME, text=heading + mail.text)
        )
    return kept, refused


def _notices(conversation: Conversation, mail: Mail, refused: list[str]) -> None:
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk, tenant_id=conversation.tenant_id)
    if refused:
        system_notice_post(
            conversation=locked,
            event="email.files_refused",
            body="Not kept from the customer's email: " + "; ".join(refused) + ".",
            event_data={"files": refused},
        )
    known = ContactIdentity.objects.for_tenant(conversation.tenant_id).filter(
        contact_id=conversation.contact_id, kind=IdentityKind.EMAIL, value=mail.sender
    )
    if conversation.channel_address == mail.sender:
        return
    if not known.exists():
        system_notice_post(
            conversation=locked,
            event="email.other_sender",
            body=f"This email came from {mail.sender}, not from the customer's own address.",
            event_data={"sender": mail.sender},
        )


@transaction.atomic
def email_receive(*, connector: ChannelConnector, mail: Mail, event_id: str = "") -> Inbound:
    """Stores one inbound email once: in the conversation it answers (reply address, then headers), else the
    sender's open email conversation, else a new one routed to the connector's queue. The agent reads the
    reply without the quoted thread; the whole mail's text is a file beside it."""
    try:
        sender = identity_normalise(kind=IdentityKind.EMAIL, value=mail.sender)
    except ApplicationError as exc:
        raise ApplicationError("invalid", "The email has no valid sender address (From).") from exc
    mail = replace(mail, sender=sender)
    provider_id = _provider_id(mail, event_id)
    receipt, repeat = receipt_claim(connector, provider_id)
    if receipt is None:
        assert repeat is not None
        return repeat
    reply = latest_reply(mail.text)
    conversation = link_request_use(connector=connector, address=sender, body=f"{mail.subject}\n{reply}")
    if conversation is None:
        conversation = _threaded(connector, mail)
    threaded = conversation is not None
    if conversation is None:
        conversation, contact = conversation_for_sender(connector, sender, mail.sender_name)
    refused: list[str] = []
    if conversation is None:
        body = f"{mail.subject}\n\n{reply}".strip() if mail.subject else reply

        def attach(new: Conversation) -> list[Attachment]:
            kept, refused[:] = _store_files(new, mail, reply)
            return kept

        conversation, message = conversation_request_on_channel(
            contact=contact,
            channel=connector.kind,
            queue=connector.queue,
            body=body,
            client_id=provider_id,
            attach=attach,
        )
    else:
        kept, refused = _store_files(conversation, mail, reply)
        message = message_receive(conversation=conversation, body=reply, client_id=provider_id, attachments=kept)
    receipt.message = message
    receipt.email_message_id = mail.message_id[:255]
    receipt.subject = mail.subject
    receipt.save(update_fields=["message", "email_message_id", "subject"])
    if threaded and conversation.channel_address == sender:
        address_proved(connector, conversation, sender)  # the answer to a switch's introduction
    if refused or threaded:
        _notices(conversation, mail, refused)
    return Inbound(conversation_id=conversation.pk, message_id=message.pk)


# Anymail's normalised tracking events, as the delivery states they mean ("failed" ones end it).
TRACKING_STATUS = {
    "queued": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "opened": "read",
    "clicked": "read",
    "bounced": "failed",
    "rejected": "failed",
    "failed": "failed",
}


def email_tracking_receive(*, connector: ChannelConnector, message_id: str, event_type: str, reason: str = "") -> bool:
    """An ESP's tracking event for a mail the relay sent (its ESP message id); True when it changed something."""
    status = TRACKING_STATUS.get(event_type)
    if status is None or not message_id:
        return False
    return delivery_status_update(connector=connector, provider_id=message_id, status=status, error_code=reason[:32])
