"""Identity verification: a signed-in user of the customer's site chats as themselves.

Each widget may hold a secret (made on its settings page, shown once, kept sealed). The customer's backend signs
its user's id, and optionally the email and phone it knows for them, with HMAC-SHA256 under that secret; the page
hands id and signature to the widget (docs/identity-verification.md). A matching signature makes the user id a
verified identity of one contact (`IdentityKind.EXTERNAL`): every browser that user signs in from is that contact,
sees their history on every channel and joins their open web chat of the widget, whichever device started it. A
chat the same browser began anonymously before signing in stays the user's (its anonymous contact is merged in).
A signature that does not match is refused and changes nothing; the widget then starts as an anonymous visitor.

The signed text is the user id, then the email, then the phone, each on its own line, with trailing empty lines
dropped: `id`, `id\\nemail`, `id\\n\\nphone`, `id\\nemail\\nphone`. Signed values are taken exactly as given.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from chat.models import Channel, Conversation, ConversationStatus, Widget
from chat.services.contacts import contact_merge
from chat.services.messages import rate_limit_refusal
from chat.tokens import new_visitor_id
from contactcenter.errors import ApplicationError, Conflict
from contactcenter.models import Contact, ContactIdentity, IdentityKind
from contactcenter.secretbox import seal, unseal
from contactcenter.services.contacts import contact_create, contact_identity_add, identity_normalise

SECRET_BYTES = 32
SIGNATURE_MAX_CHARS = 128
FIELD_MAX_CHARS = 254

IDENTITY_ERRORS = {
    "identity_not_enabled": "This chat does not take signed-in users: its identity secret is not set.",
    "identity_invalid": "The signature does not match this user: the chat starts as an anonymous visitor.",
}


def identity_message(*, user_id: str, email: str = "", phone: str = "") -> str:
    """The text the customer's backend signs (see the module's docstring)."""
    return "\n".join((user_id, email or "", phone or "")).rstrip("\n")


def identity_signature(*, secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def widget_identity_secret_rotate(*, widget: Widget) -> str:
    """A new identity secret for the widget, returned once: the old one, if any, stops verifying at once."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    widget.identity_secret_sealed = seal(secret)
    widget.identity_secret_set_at = timezone.now()
    widget.save(update_fields=["identity_secret_sealed", "identity_secret_set_at"])
    return secret


# How long after it was made a new secret may still be revealed, once, on the page the rotation redirects to.
SECRET_REVEAL_SECONDS = 300


def widget_identity_secret_reveal(*, widget: Widget, set_at: str) -> str | None:
    """The secret made at `set_at` (the rotation's own timestamp, which the settings page carries across its
    redirect; never the secret itself), while it is still the widget's and a few minutes old at most; else None."""
    made = widget.identity_secret_set_at
    if not widget.identity_secret_sealed or made is None or made.isoformat() != set_at:
        return None
    if (timezone.now() - made).total_seconds() > SECRET_REVEAL_SECONDS:
        return None
    return unseal(widget.identity_secret_sealed)


@transaction.atomic
def widget_identity_secret_clear(*, widget: Widget) -> None:
    """Turns identity verification off: signed user ids are refused; users already known keep their history."""
    widget.identity_secret_sealed = ""
    widget.identity_secret_set_at = None
    widget.save(update_fields=["identity_secret_sealed", "identity_secret_set_at"])


@dataclass(frozen=True)
class Identified:
    """Who the widget's visitor now is, and their open web chat of this widget (None: none is open)."""

    visitor_id: str
    contact: Contact
    conversation: Conversation | None


def _refused(code: str) -> ApplicationError:
    return ApplicationError(code, IDENTITY_ERRORS[code], {"signature": [IDENTITY_ERRORS[code]]})


def _text(value: object, name: str, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ApplicationError("invalid", f"`{name}` must be text.", {name: ["Expected text."]})
    if required and not value:
        raise ApplicationError("invalid", f"`{name}` is required.", {name: ["Required."]})
    if len(value) > FIELD_MAX_CHARS:
        raise ApplicationError("invalid", f"`{name}` is too long.", {name: [f"At most {FIELD_MAX_CHARS} characters."]})
    return value


def _failed(client_ip: str | None) -> ApplicationError:
    """A wrong signature counts against the client's address (IDENTITY_FAILURE_RATE); right ones never do, since a
    signed-in user's every page load signs in again."""
    if client_ip is not None:
        refusal = rate_limit_refusal(
            setting="IDENTITY_FAILURE_RATE",
            scope="identity-ip",
            key=client_ip,
            problem="Too many wrong signatures from here",
        )
        if refusal is not None:
            return refusal
    return _refused("identity_invalid")


def _user_contact(widget: Widget, user_id: str, name: str) -> Contact:
    """The contact holding the verified user id, made (with the id) on the user's first sign-in."""
    mine = ContactIdentity.objects.for_tenant(widget.tenant_id).filter(
        kind=IdentityKind.EXTERNAL, value=user_id, verified=True
    )
    identity = mine.select_related("contact").first()
    if identity is not None:
        return identity.contact
    try:
        with transaction.atomic():
            contact = contact_create(tenant=widget.tenant, name=name)
            contact_identity_add(contact=contact, kind=IdentityKind.EXTERNAL, value=user_id, verified=True)
            return contact
    except Conflict:  # the same user signed in at the same moment elsewhere: theirs won
        return mine.select_related("contact").get().contact


def _web_contact_id(tenant_id: int, visitor_id: str | None) -> int | None:
    if not visitor_id:
        return None
    return (
        ContactIdentity.objects.for_tenant(tenant_id)
        .filter(kind=IdentityKind.WEB, value=visitor_id, verified=True)
        .order_by("pk")
        .values_list("contact_id", flat=True)
        .first()
    )


def _anonymous(tenant_id: int, contact_id: int) -> bool:
    """Nothing but this browser proves who the contact is (no verified address, no user id): a visitor who began
    chatting before signing in, whose chat and history become the user's."""
    return (
        not ContactIdentity.objects.for_tenant(tenant_id)
        .filter(contact_id=contact_id, verified=True)
        .exclude(kind=IdentityKind.WEB)
        .exists()
    )


def _open_web_chat(widget: Widget, contact: Contact) -> Conversation | None:
    return (
        Conversation.objects.for_tenant(widget.tenant_id)
        .filter(contact=contact, widget_id=widget.pk, channel=Channel.WEB)
        .exclude(status=ConversationStatus.CLOSED)
        .exclude(visitor_id="")
        .order_by("-pk")
        .first()
    )


def _signed_address(contact: Contact, kind: str, value: str) -> None:
    """A signed email or phone becomes a verified address of the contact, unless another contact holds it verified
    (then it stays theirs: merging two customers is an agent's or integrator's explicit act)."""
    try:
        normalised = identity_normalise(kind=kind, value=value)
    except ApplicationError as exc:
        raise ApplicationError(exc.code, exc.message, {kind: list(exc.fields.get("value", [exc.message]))}) from exc
    with contextlib.suppress(Conflict):
        contact_identity_add(contact=contact, kind=kind, value=normalised, verified=True)


@transaction.atomic
def visitor_identify(
    *,
    widget: Widget,
    user_id: object,
    signature: object,
    email: object = "",
    phone: object = "",
    name: object = "",
    current_visitor_id: str | None,
    client_ip: str | None,
) -> Identified:
    """Signs the widget's visitor in as the user the signature vouches for.

    The visitor id this browser goes on with: its own if it already is this user, or if it was anonymous (its
    contact, chats and all, is merged into the user's); the one of the user's open web chat of this widget if
    there is one (another device's chat continues here); else a new one. A browser that is another user keeps
    nothing of theirs. Refused, changing nothing: no secret set, a signature that does not match."""
    user_id, signature = _text(user_id, "user_id", required=True), _text(signature, "signature", required=True)
    email, phone, name = _text(email, "email"), _text(phone, "phone"), _text(name, "name")
    if not widget.identity_secret_sealed:
        raise _refused("identity_not_enabled")
    expected = identity_signature(
        secret=unseal(widget.identity_secret_sealed),
        message=identity_message(user_id=user_id, email=email, phone=phone),
    )
    if len(signature) > SIGNATURE_MAX_CHARS or not hmac.compare_digest(expected, signature.strip().lower()):
        raise _failed(client_ip)
    user = identity_normalise(kind=IdentityKind.EXTERNAL, value=user_id)
    contact = _user_contact(widget, user, name)
    current_contact_id = _web_contact_id(widget.tenant_id, current_visitor_id)
    if (
        current_contact_id is not None
        and current_contact_id != contact.pk
        and _anonymous(widget.tenant_id, current_contact_id)
    ):
        contact_merge(
            tenant_id=widget.tenant_id,
            contact_id=contact.pk,
            merged_contact_id=current_contact_id,
            merged_by="identity verification",
        )
        current_contact_id = contact.pk
    # Locked from here (after the merge, which locks both in id order): its chats cannot move meanwhile.
    contact = Contact.objects.for_tenant(widget.tenant_id).select_for_update().get(pk=contact.pk)
    if name and not contact.name:
        contact.name = name.strip()[:200]
        contact.save(update_fields=["name"])
    if email:
        _signed_address(contact, IdentityKind.EMAIL, email)
    if phone:
        _signed_address(contact, IdentityKind.PHONE, phone)
    mine = current_contact_id == contact.pk and current_visitor_id
    open_chat = _open_web_chat(widget, contact)
    if mine and (open_chat is None or open_chat.visitor_id == current_visitor_id):
        visitor_id = current_visitor_id
    elif open_chat is not None:
        visitor_id = open_chat.visitor_id
    elif mine:
        visitor_id = current_visitor_id
    else:
        visitor_id = new_visitor_id()
    assert visitor_id
    contact_identity_add(contact=contact, kind=IdentityKind.WEB, value=visitor_id, verified=True)
    return Identified(visitor_id=visitor_id, contact=contact, conversation=open_chat)
