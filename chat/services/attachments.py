"""Attachments: what an upload really is (magic bytes, markup sniffing, extension and declared type), storing it."""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.db import transaction

from chat.models import (
    DEFAULT_FILE_TYPES,
    Attachment,
    Conversation,
    ConversationStatus,
)
from chat.selectors import (
    Actor,
    AgentActor,
    VisitorActor,
    conversation_get_for,
)
from contactcenter.errors import ApplicationError

UPLOAD_ABSOLUTE_MAX = 50 * 1024 * 1024
SNIFF_BYTES = 2048
# Types that can carry scripts when a browser renders them: refused whatever a widget's settings say.
NEVER_ALLOWED_TYPES = frozenset(
    {
        "text/html",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
    }
)
MAGIC_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
# What a download may be served as; anything else goes out as application/octet-stream.
SAFE_SERVED_TYPES = frozenset(MAGIC_TYPES)
MARKUP_HINTS = (b"<html", b"<svg", b"<script", b"<!doctype", b"<?xml", b"<body", b"<iframe", b"<head")


def sniff_content_type(head: bytes) -> str | None:
    """The real type of images and PDFs by their magic bytes; None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _looks_like_markup(head: bytes) -> bool:
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return sample.startswith(b"<") and any(hint in sample for hint in MARKUP_HINTS)


def _is_utf8_text(upload: UploadedFile) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    upload.seek(0)
    try:
        for chunk in upload.chunks():
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        upload.seek(0)
    return True


def _clean_filename(name: str) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*').strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 190 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name or "file"


def upload_content_type(*, upload: UploadedFile, allowed: Sequence[str]) -> str:
    """The type an upload really has, if the widget allows it; refuses markup and content/claim mismatches."""
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    allowed_types = {str(t).lower() for t in allowed} - NEVER_ALLOWED_TYPES
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    sniffed = sniff_content_type(head)
    if sniffed is not None:
        if sniffed not in allowed_types:
            raise ApplicationError("file_type_not_allowed", "This type of file is not accepted here.", status=415)
        return sniffed
    if declared in MAGIC_TYPES:
        raise ApplicationError(
            "file_type_mismatch", f"The file's content is not {declared}.", {"file": ["Content mismatch."]}, status=415
        )
    if declared in NEVER_ALLOWED_TYPES or _looks_like_markup(head):
        raise ApplicationError("file_type_not_allowed", "Web pages and SVG files are never accepted.", status=415)
    if declared in ("text/plain", "", "application/octet-stream") and "text/plain" in allowed_types:
        if _is_utf8_text(upload):
            return "text/plain"
        if declared == "text/plain":
            raise ApplicationError(
                "file_type_mismatch", "A text file must be UTF-8 text.", {"file": ["Not UTF-8 text."]}, status=415
            )
    if declared and declared in allowed_types and not declared.startswith("text/"):
        return declared  # unknown to the sniffer: stored as claimed, always served as octet-stream
    raise ApplicationError("file_type_not_allowed", "This type of file is not accepted here.", status=415)


# What a file name's extension claims, for the types the sniffer knows (a fixed table: the mimetypes module
# reads the machine's /etc/mime.types); extensions a browser would open as a page or script are never taken.
UPLOAD_EXTENSION_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "jfif": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "txt": "text/plain",
}
UPLOAD_MARKUP_EXTENSIONS = frozenset({"htm", "html", "shtml", "xht", "xhtml", "svg", "svgz", "xml", "xsl", "js", "mjs"})
UPLOAD_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
}


def _upload_claims_check(*, filename: str, declared: str, content_type: str) -> None:
    """Refuses an upload whose name or declared type says something else than its content (docs/protocol.md §6).

    `content_type` is what upload_content_type found (sniffed for images and PDF, UTF-8 for text); the browser
    declares a type from the file's extension, so a PNG named `x.pdf` contradicts itself twice.
    """
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    if extension in UPLOAD_MARKUP_EXTENSIONS:
        raise ApplicationError(
            "file_type_not_allowed", "Web pages, SVG and script files are never accepted.", status=415
        )
    declared = declared.split(";")[0].strip().lower()
    declared = UPLOAD_TYPE_ALIASES.get(declared, declared)
    claims = {
        "name": UPLOAD_EXTENSION_TYPES.get(extension),
        "type": None if declared in ("", "application/octet-stream") else declared,
    }
    for what, claimed in claims.items():
        if claimed is not None and claimed != content_type:
            message = f"The file's content is {content_type}, but its {what} says {claimed}."
            raise ApplicationError("file_type_mismatch", message, {"file": [message]}, status=415)


@transaction.atomic
def attachment_upload(*, actor: Actor, conversation_id: int, upload: UploadedFile) -> Attachment:
    """Stores an upload under MEDIA_ROOT with a random name, within the widget's size and type limits.

    Content, name and declared type must agree (`file_type_mismatch` otherwise): what is stored and served
    is what the bytes are, under a name that says the same.
    """
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    if conversation.status == ConversationStatus.CLOSED:
        raise ApplicationError("conversation_closed", "This conversation is closed.", status=409)
    max_bytes, allowed = _limits(conversation)
    size = upload.size or 0
    if size <= 0:
        raise ApplicationError("invalid", "The file is empty.", {"file": ["Empty file."]})
    if size > max_bytes:
        raise ApplicationError(
            "file_too_large", f"Files are at most {max_bytes // 1024} KiB here.", {"file": ["Too large."]}, status=413
        )
    content_type = upload_content_type(upload=upload, allowed=allowed)
    filename = _clean_filename(upload.name or "")
    _upload_claims_check(filename=filename, declared=upload.content_type or "", content_type=content_type)
    attachment = Attachment(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        filename=filename,
        content_type=content_type,
        size=size,
        uploaded_by_visitor=isinstance(actor, VisitorActor),
        uploaded_by=actor.user if isinstance(actor, AgentActor) else None,
    )
    # upload_to picks a random name: the visitor's file name never reaches the disk.
    attachment.file.save("upload", upload, save=False)
    attachment.save()
    return attachment


def _limits(conversation: Conversation) -> tuple[int, list[str]]:
    """What a conversation's files may be: its widget's limits, else the defaults (a conversation that began
    on a provider's channel has no widget)."""
    widget = conversation.widget if conversation.widget_id else None
    max_bytes = min(widget.max_upload_bytes if widget else 10 * 1024 * 1024, UPLOAD_ABSOLUTE_MAX)
    return max_bytes, list(widget.allowed_file_types) if widget else list(DEFAULT_FILE_TYPES)


def attachment_receive(*, conversation: Conversation, filename: str, content: bytes, declared_type: str) -> Attachment:
    """A file a customer sent through a provider (an email's attachment, an MMS or WhatsApp image), stored
    unlinked for the caller to put on the message, under the same checks and limits as an upload; refused
    (ApplicationError, saying why) when it is empty, too large or of a type not taken here. The caller holds the
    conversation."""
    max_bytes, allowed = _limits(conversation)
    size = len(content)
    if size <= 0:
        raise ApplicationError("invalid", "The file is empty.")
    if size > max_bytes:
        raise ApplicationError("file_too_large", f"Files are at most {max_bytes // 1024} KiB here.", status=413)
    upload = SimpleUploadedFile(filename or "file", content, content_type=declared_type.split(";")[0].strip())
    content_type = upload_content_type(upload=upload, allowed=allowed)
    name = _clean_filename(filename)
    _upload_claims_check(filename=name, declared=upload.content_type or "", content_type=content_type)
    return _store(conversation, name, content_type, content)


def attachment_original_keep(*, conversation: Conversation, filename: str, text: str) -> Attachment:
    """The whole text of what a customer sent when the message shows only part of it (an email's reply without
    the quoted thread), kept as a text file beside it for the agent. Switchboard's own file: no type checks;
    cut at the absolute upload limit."""
    content = text.encode("utf-8")[:UPLOAD_ABSOLUTE_MAX]
    return _store(conversation, _clean_filename(filename), "text/plain", content)


def _store(conversation: Conversation, filename: str, content_type: str, content: bytes) -> Attachment:
    attachment = Attachment(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        filename=filename,
        content_type=content_type,
        size=len(content),
        uploaded_by_visitor=True,
    )
    attachment.file.save("upload", ContentFile(content), save=False)
    attachment.save()
    return attachment


def attachment_served_type(attachment: Attachment) -> str:
    if attachment.content_type in SAFE_SERVED_TYPES:
        return attachment.content_type
    if attachment.content_type == "text/plain":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
