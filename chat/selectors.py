"""Reads of chat: conversations and their messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery

from chat.events import (
    PROTOCOL_VERSION,
    MessageData,
    agent_message_view,
    conversation_state,
    iso,
    message_data,
    user_ref,
    visitor_conversation,
    visitor_message_view,
)
from chat.models import Attachment, Channel, Conversation, ConversationStatus, Message
from contactcenter.errors import NotFound, PermissionDenied
from contactcenter.models import ROLE_RANK, Contact, ContactIdentity, IdentityKind, Membership, Role, Tenant


def message_list_after(*, reader: TeamReader, conversation: Conversation, after: int, limit: int) -> list[Message]:
    """Up to `limit` messages with a seq above `after` that the reader may see (the read rule), in seq order."""
    visibility = conversation_visibility(reader=reader, conversation=conversation)
    if visibility.level is None:
        raise NotFound("conversation")
    messages = Message.objects.filter(tenant_id=reader.tenant_id, conversation=conversation, seq__gt=after)
    if not visibility.private_notes:
        messages = messages.filter(is_private=False)
    return list(messages.prefetch_related("attachments").order_by("seq")[:limit])


# --- live chat: who may touch a conversation, replay from the database, console snapshots ------------------
# (docs/protocol.md; used by the websocket consumers and the widget/console JSON endpoints)

READ = "read"
WRITE = "write"
REPLAY_BATCH = 200
HISTORY_LIMIT_MAX = 5


@dataclass(frozen=True)
class VisitorActor:
    """A web visitor, as proven by a signed visitor token: one widget's conversations of one visitor id."""

    tenant_id: int
    widget_id: int
    visitor_id: str


@dataclass(frozen=True)
class AgentActor:
    """A console user of one tenant (any role); the tenant comes from the membership, never from input."""

    tenant_id: int
    user: User
    role: str

    @property
    def supervises(self) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role.SUPERVISOR]


Actor = VisitorActor | AgentActor


def agent_actor_for(user: Any) -> AgentActor | None:
    """The acting agent behind a session user, or None (anonymous, inactive, or no membership)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    membership = Membership.objects.filter(user=user).only("tenant_id", "role").first()
    if membership is None:
        return None
    return AgentActor(tenant_id=membership.tenant_id, user=user, role=membership.role)


def agent_actor_refresh(*, actor: AgentActor) -> AgentActor | None:
    """The actor as the database has it now: None once the user is deactivated or no longer a member of the
    actor's tenant; a new actor when the role changed (a socket holds its actor for its whole life)."""
    role = (
        Membership.objects.filter(user_id=actor.user.pk, tenant_id=actor.tenant_id, user__is_active=True)
        .values_list("role", flat=True)
        .first()
    )
    if role is None:
        return None
    return actor if role == actor.role else AgentActor(tenant_id=actor.tenant_id, user=actor.user, role=role)


# --- the read rule: who sees which conversation, and whether its private notes (docs/protocol.md §4) -------
#
# One function decides it for every path that shows a conversation or its messages: the agent socket's
# resume and writes, the console's "older messages" and attachment downloads, the contact page, and the REST
# messages endpoint (session or API key).

HISTORY = "history"


@dataclass(frozen=True)
class TeamReader:
    """A reader on the team's side without an agent actor: a REST caller. An API key has no user and acts as admin."""

    tenant_id: int
    user_id: int | None
    role: str


Reader = Actor | TeamReader


@dataclass(frozen=True)
class Visibility:
    """What a reader sees of one conversation.

    `level`: WRITE (a visitor's own conversation; for the team, its assignee or a participant), READ (a
    supervisor or admin taking no part: everything, read-only), HISTORY (an agent taking no part: the
    transcript the customer saw, as the contact's history, never live), or None ("not found").
    """

    level: str | None
    private_notes: bool

    @property
    def live(self) -> str | None:
        """WRITE or READ: may resume the conversation on a socket (HISTORY may not)."""
        return self.level if self.level in (READ, WRITE) else None


NOT_VISIBLE = Visibility(level=None, private_notes=False)


def _takes_part(conversation: Conversation, user_id: int) -> bool:
    """Assignee or participant; reads prefetched participants when the caller prefetched them."""
    if conversation.assignee_id == user_id:
        return True
    prefetched = getattr(conversation, "_prefetched_objects_cache", {})
    if "participants" in prefetched:
        return any(user.pk == user_id for user in prefetched["participants"])
    return conversation.participants.filter(pk=user_id).exists()


def conversation_visibility(*, reader: Reader, conversation: Conversation) -> Visibility:
    """The read rule. Another tenant's conversation is not visible; a visitor sees their own (never notes);
    on the team, the assignee and participants see everything and may write, supervisors and admins (and
    API keys) see everything, and any other agent sees the customer-facing transcript only."""
    if conversation.tenant_id != reader.tenant_id:
        return NOT_VISIBLE
    if isinstance(reader, VisitorActor):
        mine = (
            bool(conversation.visitor_id)
            and conversation.visitor_id == reader.visitor_id
            and conversation.widget_id == reader.widget_id
        )
        return Visibility(level=WRITE, private_notes=False) if mine else NOT_VISIBLE
    user_id = reader.user.pk if isinstance(reader, AgentActor) else reader.user_id
    if user_id is not None and _takes_part(conversation, user_id):
        return Visibility(level=WRITE, private_notes=True)
    if ROLE_RANK[Role(reader.role)] >= ROLE_RANK[Role.SUPERVISOR]:
        return Visibility(level=READ, private_notes=True)
    return Visibility(level=HISTORY, private_notes=False)


def conversation_access(*, actor: Actor, conversation: Conversation) -> str | None:
    """WRITE, READ or None for live work (None is answered as "not found": not yours and absent look alike)."""
    return conversation_visibility(reader=actor, conversation=conversation).live


def conversation_get_for(
    *, actor: Actor, conversation_id: int, write: bool = False, lock: bool = False, related: tuple[str, ...] = ()
) -> tuple[Conversation, str]:
    """The conversation with the actor's access to it; NotFound / PermissionDenied otherwise.

    `lock` takes the row lock (inside the caller's transaction): every seq allocation and status change
    of one conversation is serialised on this row. `related`: relations to read in the same statement.
    """
    queryset = Conversation.objects.for_tenant(actor.tenant_id).filter(pk=conversation_id)
    if related:
        queryset = queryset.select_related(*related)
    if lock:
        queryset = queryset.select_for_update()
    conversation = queryset.first()
    access = conversation_access(actor=actor, conversation=conversation) if conversation is not None else None
    if conversation is None or access is None:
        raise NotFound("conversation")
    if write and access != WRITE:
        raise PermissionDenied("You may read this conversation but not write in it.")
    return conversation, access


@dataclass(frozen=True)
class Replay:
    """Messages after a position, and the position a socket holds once it has sent them."""

    messages: list[MessageData]
    upto: int
    complete: bool


def message_replay(
    *, tenant_id: int, conversation_id: int, after_seq: int, include_private: bool, limit: int = REPLAY_BATCH
) -> Replay:
    """Stored messages with seq > `after_seq`, in order, at most `limit`; private notes only for agents.

    The conversation's last_seq is read first: every message up to it is committed (seq and last_seq are
    written in one transaction), so `upto` never skips a message still being written.
    """
    last_seq = (
        Conversation.objects.filter(tenant_id=tenant_id, pk=conversation_id).values_list("last_seq", flat=True).first()
    )
    if last_seq is None or last_seq <= after_seq:
        return Replay(messages=[], upto=max(after_seq, 0), complete=True)
    queryset = Message.objects.filter(
        tenant_id=tenant_id, conversation_id=conversation_id, seq__gt=after_seq, seq__lte=last_seq
    )
    if not include_private:
        queryset = queryset.filter(is_private=False)
    rows = list(queryset.select_related("sender_user").prefetch_related("attachments").order_by("seq")[:limit])
    complete = len(rows) < limit
    upto = last_seq if complete else rows[-1].seq
    return Replay(messages=[message_data(m) for m in rows], upto=upto, complete=complete)


def conversation_positions(*, tenant_id: int, conversation_ids: list[int]) -> dict[int, int]:
    """conversation id → last_seq, for the ping catch-up (one query for all of a socket's conversations)."""
    if not conversation_ids:
        return {}
    rows = Conversation.objects.filter(tenant_id=tenant_id, pk__in=conversation_ids).values_list("pk", "last_seq")
    return dict(rows)


def contact_data(contact: Contact) -> dict[str, Any]:
    identities = sorted(contact.identities.all(), key=lambda i: (not i.verified, i.kind, i.value))
    return {
        "id": contact.pk,
        "name": contact.name,
        "identities": [{"kind": i.kind, "value": i.value, "verified": i.verified} for i in identities],
    }


def conversation_preview(conversation: Conversation, length: int = 200) -> str:
    """The conversation's first visitor words, cut to `length` (one query; lists annotate first_visitor_words)."""
    first = (
        Conversation.objects.for_tenant(conversation.tenant_id)
        .filter(pk=conversation.pk)
        .annotate(first_words=first_visitor_words())
        .values_list("first_words", flat=True)
        .first()
    )
    return preview_text(first, length)


def conversation_previews(*, tenant_id: int, conversation_ids: list[int], length: int = 200) -> dict[int, str]:
    """conversation_preview of several conversations in one query: id → preview."""
    rows = (
        Conversation.objects.for_tenant(tenant_id)
        .filter(pk__in=conversation_ids)
        .annotate(first_words=first_visitor_words())
        .values_list("pk", "first_words")
    )
    return {pk: preview_text(words, length) for pk, words in rows}


def first_visitor_words(conversation: str = "pk") -> Subquery:
    """A conversation's first visitor words as a subquery correlated on the outer query's `conversation` field
    (conversation_preview for a list: annotate it and pass preview_text of it on, no query per conversation)."""
    return Subquery(
        Message.objects.filter(conversation_id=OuterRef(conversation), sender_kind="visitor")
        .exclude(body="")
        .order_by("seq")
        .values("body")[:1]
    )


def preview_text(first_words: str | None, length: int = 200) -> str:
    return (first_words or "")[:length]


def contact_has_verified_identity(contact_id: int, tenant_id: int) -> bool:
    return ContactIdentity.objects.filter(tenant_id=tenant_id, contact_id=contact_id, verified=True).exists()


def _history_queryset(conversation: Conversation, before: int) -> QuerySet[Conversation]:
    return Conversation.objects.for_tenant(conversation.tenant_id).filter(
        contact_id=conversation.contact_id, pk__lt=before
    )


def conversation_has_history(conversation: Conversation) -> bool:
    """Older conversations exist AND the contact is tied to them by a verified identity (never a typed one).

    Reads the contact's identities through the relation, so the console's lists (which prefetch them) pay
    no query per conversation for it, and the `has_older` annotation of `_agent_conversations` when present.
    """
    if not any(identity.verified for identity in conversation.contact.identities.all()):
        return False
    has_older = getattr(conversation, "has_older", None)
    if has_older is not None:
        return bool(has_older)
    return _history_queryset(conversation, conversation.pk).exists()


def agent_conversation_data(conversation: Conversation, *, access: str) -> dict[str, Any]:
    """The console's full view of one conversation (hello, conversation.assigned)."""
    widget = conversation.widget if conversation.widget_id else None
    data: dict[str, Any] = dict(conversation_state(conversation))
    data.update(
        {
            "created_at": iso(conversation.created_at),
            "visitor_read_seq": conversation.visitor_read_seq,
            "agent_read_seq": conversation.agent_read_seq,
            "started_offline": conversation.started_offline,
            "contact": contact_data(conversation.contact),
            "survey": list(conversation.survey or []),
            "widget": (
                {"id": widget.pk, "name": widget.name, "agent_external_url": widget.agent_external_url}
                if widget is not None
                else None
            ),
            "has_history": conversation_has_history(conversation),
            "access": access,
        }
    )
    return data


def _agent_conversations(tenant_id: int) -> QuerySet[Conversation]:
    return (
        Conversation.objects.for_tenant(tenant_id)
        .select_related("contact", "assignee", "widget")
        .prefetch_related("contact__identities", "participants")
        # A returning visitor's earlier chats (same contact), in the same statement: no query per conversation.
        .annotate(
            has_older=Exists(
                Conversation.objects.filter(
                    tenant_id=OuterRef("tenant_id"), contact_id=OuterRef("contact_id"), pk__lt=OuterRef("pk")
                )
            )
        )
    )


def agent_conversation_get(*, actor: AgentActor, conversation_id: int) -> dict[str, Any]:
    conversation, access = conversation_get_for(actor=actor, conversation_id=conversation_id)
    conversation = _agent_conversations(actor.tenant_id).get(pk=conversation.pk)
    return agent_conversation_data(conversation, access=access)


def agent_open_conversation_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    """What the agent is working on: not-closed conversations they are assignee or participant of."""
    conversations = (
        _agent_conversations(actor.tenant_id)
        .filter(Q(assignee=actor.user) | Q(participants=actor.user))
        .exclude(status=ConversationStatus.CLOSED)
        .distinct()
        .order_by("created_at", "pk")
    )
    return [agent_conversation_data(c, access=WRITE) for c in conversations]


def conversation_history(
    *, actor: AgentActor, conversation_id: int, before: int | None = None, limit: int = 1
) -> dict[str, Any]:
    """ "Older messages": earlier conversations of the same contact, only through a verified identity."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id)
    limit = max(1, min(int(limit), HISTORY_LIMIT_MAX))
    if not contact_has_verified_identity(conversation.contact_id, conversation.tenant_id):
        return {"conversations": [], "has_more": False}
    start = conversation.pk if before is None else min(int(before), conversation.pk)
    earlier = list(
        _history_queryset(conversation, start)
        .select_related("assignee")
        .prefetch_related("participants")
        .order_by("-pk")[: limit + 1]
    )
    page = earlier[:limit]
    transcripts = transcripts_for(reader=actor, conversations=page)
    by_conversation = {
        c.pk: [agent_message_view(message_data(message)) for message in transcripts[c.pk].messages] for c in page
    }
    return {
        "conversations": [
            {
                "id": c.pk,
                "created_at": iso(c.created_at),
                "closed_at": iso(c.closed_at),
                "channel": c.channel,
                "assignee": user_ref(c.assignee if c.assignee_id else None),
                "messages": by_conversation[c.pk],
            }
            for c in page
        ],
        "has_more": len(earlier) > limit,
    }


@dataclass(frozen=True)
class Transcript:
    """One conversation's messages as a reader may see them; `private_notes` says whether notes were included."""

    conversation: Conversation
    messages: list[Message]
    private_notes: bool


def transcripts_for(*, reader: Reader, conversations: list[Conversation]) -> dict[int, Transcript]:
    """conversation id → its transcript under the read rule, in one message query for all of them.

    Private notes of a conversation the reader may not see them in are never read from the database. Pass
    conversations with `participants` prefetched (else one query each).
    """
    visibility = {c.pk: conversation_visibility(reader=reader, conversation=c) for c in conversations}
    shown = [pk for pk, seen in visibility.items() if seen.level is not None]
    with_notes = [pk for pk in shown if visibility[pk].private_notes]
    messages = (
        Message.objects.filter(tenant_id=reader.tenant_id, conversation_id__in=shown)
        .filter(Q(is_private=False) | Q(conversation_id__in=with_notes))
        .select_related("sender_user")
        .prefetch_related(
            Prefetch("attachments", queryset=Attachment.objects.for_tenant(reader.tenant_id).order_by("pk"))
        )
        .order_by("conversation_id", "seq")
    )
    by_conversation: dict[int, list[Message]] = {pk: [] for pk in shown}
    for message in messages:
        by_conversation[message.conversation_id].append(message)
    return {
        c.pk: Transcript(conversation=c, messages=by_conversation[c.pk], private_notes=visibility[c.pk].private_notes)
        for c in conversations
        if c.pk in by_conversation
    }


def visitor_current_conversation(*, actor: VisitorActor) -> Conversation | None:
    """The visitor's latest web chat of this widget that is not closed (one that moved to SMS, WhatsApp or email
    goes on there, never here again)."""
    return (
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(widget_id=actor.widget_id, visitor_id=actor.visitor_id, channel=Channel.WEB)
        .exclude(status=ConversationStatus.CLOSED)
        .select_related("assignee")
        .order_by("-pk")
        .first()
    )


def visitor_moved_conversation(*, actor: VisitorActor) -> Conversation | None:
    """The visitor's latest open conversation of this widget that moved from the web to another channel: a
    reopened widget says where it continues."""
    return (
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(widget_id=actor.widget_id, visitor_id=actor.visitor_id)
        .exclude(channel=Channel.WEB)
        .exclude(status=ConversationStatus.CLOSED)
        .select_related("assignee")
        .order_by("-pk")
        .first()
    )


def conversation_moved_by_link(*, conversation: Conversation) -> bool:
    """Whether the latest move of this conversation was the customer following a link an agent or integrator sent
    (its `conversation.switched` notice says `via: link`): the widget keeps such a chat live, without a composer."""
    latest = (
        Message.objects.for_tenant(conversation.tenant_id)
        .filter(conversation_id=conversation.pk, event="conversation.switched")
        .order_by("-seq")
        .values_list("event_data", flat=True)
        .first()
    )
    return isinstance(latest, dict) and latest.get("via") == "link" and latest.get("to") != Channel.WEB


VISITOR_HISTORY_CONVERSATIONS = 10


def visitor_history(*, actor: VisitorActor) -> list[dict[str, Any]]:
    """A signed-in visitor's earlier conversations on every channel (web, SMS, WhatsApp, email), oldest first: those
    of the contact their browser's web identity belongs to, which is verified (a token, an auth code or a signed
    identity proved it; a typed address never links anything). The visitor's current web chat is not among them
    (its socket replays it), nor private notes; files are named, not linked (their signed links are per visitor)."""
    identity = (
        ContactIdentity.objects.for_tenant(actor.tenant_id)
        .filter(kind=IdentityKind.WEB, value=actor.visitor_id, verified=True)
        .order_by("pk")
        .first()
    )
    if identity is None:
        return []
    current = visitor_current_conversation(actor=actor)
    earlier = Conversation.objects.for_tenant(actor.tenant_id).filter(contact_id=identity.contact_id)
    if current is not None:
        earlier = earlier.exclude(pk=current.pk)
    conversations = list(earlier.order_by("-pk")[:VISITOR_HISTORY_CONVERSATIONS])
    conversations.reverse()
    messages = (
        Message.objects.for_tenant(actor.tenant_id)
        .filter(conversation_id__in=[c.pk for c in conversations], is_private=False)
        .select_related("sender_user")
        .prefetch_related(
            Prefetch("attachments", queryset=Attachment.objects.for_tenant(actor.tenant_id).order_by("pk"))
        )
        .order_by("conversation_id", "seq")
    )
    by_conversation: dict[int, list[dict[str, Any]]] = {c.pk: [] for c in conversations}
    for message in messages:
        view = visitor_message_view(message_data(message), visitor_id=actor.visitor_id)
        if view is None:
            continue
        view["attachments"] = [{k: v for k, v in a.items() if k != "url"} for a in view["attachments"]]
        view["client_id"] = None
        by_conversation[message.conversation_id].append(view)
    return [
        {
            "id": c.pk,
            "channel": c.channel,
            "created_at": iso(c.created_at),
            "closed_at": iso(c.closed_at),
            "messages": by_conversation[c.pk],
        }
        for c in conversations
    ]


def attachment_get_for(*, actor: Actor, attachment_id: int) -> Attachment:
    """An attachment under the read rule: of a conversation the actor may see, and unless they see its private
    notes, on a message that is not a note (or not sent yet and uploaded by this actor)."""
    attachment = (
        Attachment.objects.for_tenant(actor.tenant_id)
        .select_related("conversation", "message")
        .filter(pk=attachment_id)
        .first()
    )
    if attachment is None:
        raise NotFound("attachment")
    visibility = conversation_visibility(reader=actor, conversation=attachment.conversation)
    if visibility.level is None:
        raise NotFound("attachment")
    if not visibility.private_notes:
        if attachment.message is not None:
            shown = not attachment.message.is_private
        elif isinstance(actor, VisitorActor):
            shown = attachment.uploaded_by_visitor
        else:
            shown = attachment.uploaded_by_id == actor.user.pk
        if not shown:
            raise NotFound("attachment")
    return attachment


def visitor_hello(*, actor: VisitorActor, conversation_id: int) -> dict[str, Any]:
    """The visitor socket's first frame; NotFound unless the conversation is this visitor's on this widget."""
    return visitor_hello_frame(visitor_socket_conversation(actor=actor, conversation_id=conversation_id))


def visitor_socket_conversation(*, actor: VisitorActor, conversation_id: int) -> Conversation:
    """The conversation a visitor socket opens on; NotFound unless it is this visitor's on this widget."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, related=("assignee", "widget"))
    return conversation


def visitor_hello_frame(conversation: Conversation) -> dict[str, Any]:
    widget = conversation.widget
    return {
        "type": "hello",
        "v": PROTOCOL_VERSION,
        "conversation": visitor_conversation(conversation),
        "limits": {
            "max_chars": settings.MESSAGE_MAX_CHARS,
            "max_upload_bytes": widget.max_upload_bytes if widget is not None else 0,
            "allowed_file_types": list(widget.allowed_file_types) if widget is not None else [],
        },
    }


def attachment_get_for_visitor_id(*, attachment_id: int, visitor_id: str) -> Attachment:
    """The attachment a signed visitor URL names, if it still belongs to that visitor's conversation."""
    attachment = Attachment.objects.select_related("conversation").filter(pk=attachment_id).first()
    if attachment is None or not visitor_id or attachment.conversation.visitor_id != visitor_id:
        raise NotFound("attachment")
    return attachment


# --- the console's server-rendered pages: a contact with its history, past conversations ------------------

CONTACT_HISTORY_LIMIT = 20


def contact_get(*, tenant: Tenant, contact_id: int) -> Contact | None:
    """The tenant's contact with its identities (verified first), or None: another tenant's id is no contact."""
    identities = ContactIdentity.objects.for_tenant(tenant).order_by("-verified", "kind", "value")
    return (
        Contact.objects.for_tenant(tenant)
        .prefetch_related(Prefetch("identities", queryset=identities))
        .filter(pk=contact_id)
        .first()
    )


def contact_duplicates(*, tenant: Tenant, contact: Contact, limit: int = 10) -> list[Contact]:
    """The tenant's other contacts holding one of this contact's addresses (typed or proved): the likely same
    customer, for an agent to merge. Oldest first."""
    values = list(ContactIdentity.objects.for_tenant(tenant).filter(contact=contact).values_list("kind", "value"))
    if not values:
        return []
    same = Q()
    for kind, value in values:
        same |= Q(kind=kind, value=value)
    ids = ContactIdentity.objects.for_tenant(tenant).filter(same).exclude(contact=contact).values("contact_id")
    identities = ContactIdentity.objects.for_tenant(tenant).order_by("-verified", "kind", "value")
    return list(
        Contact.objects.for_tenant(tenant)
        .filter(pk__in=ids)
        .prefetch_related(Prefetch("identities", queryset=identities))
        .order_by("created_at", "pk")[:limit]
    )


def _conversation_base(*, tenant: Tenant | int) -> QuerySet[Conversation]:
    return Conversation.objects.for_tenant(tenant).select_related("contact", "assignee", "disposition", "widget")


def contact_conversation_list(
    *, actor: AgentActor, contact: Contact, limit: int = CONTACT_HISTORY_LIMIT
) -> list[Transcript]:
    """The contact's latest conversations, each with its transcript under the read rule: any agent sees what
    the customer saw (the contact's history); private notes only where the actor takes part, or supervises."""
    conversations = list(
        _conversation_base(tenant=actor.tenant_id)
        .filter(contact=contact)
        .prefetch_related("participants")
        .order_by("-created_at", "-pk")[:limit]
    )
    transcripts = transcripts_for(reader=actor, conversations=conversations)
    return [transcripts[c.pk] for c in conversations if c.pk in transcripts]


def conversation_search(
    *, tenant: Tenant, taken_by: User | None = None, contact_query: str = "", text_query: str = ""
) -> QuerySet[Conversation]:
    """Conversations, newest first, narrowed by the contact (name or any address) and by text.

    `taken_by` keeps those the user is or was assignee or participant of (an agent's own; supervisors
    and admins pass None and see the tenant's). Text matches
    message bodies, private notes included (this is the agents' own search); each result then carries
    `match` (the first matching body) to show in the list.
    """
    conversations = _conversation_base(tenant=tenant)
    if taken_by is not None:
        taken = Conversation.objects.for_tenant(tenant).filter(Q(assignee=taken_by) | Q(participants=taken_by))
        conversations = conversations.filter(pk__in=taken.values("pk"))
    contact_query = contact_query.strip()
    text_query = text_query.strip()
    if contact_query:
        identity_contacts = (
            ContactIdentity.objects.for_tenant(tenant).filter(value__icontains=contact_query).values("contact_id")
        )
        conversations = conversations.filter(
            Q(contact__name__icontains=contact_query) | Q(contact_id__in=identity_contacts)
        )
    if text_query:
        matching = Message.objects.for_tenant(tenant).filter(body__icontains=text_query)
        conversations = conversations.filter(pk__in=matching.values("conversation_id")).annotate(
            match=Subquery(matching.filter(conversation=OuterRef("pk")).order_by("seq").values("body")[:1])
        )
    return conversations.annotate(message_count=Count("messages", filter=Q(messages__event=""))).order_by(
        "-created_at", "-pk"
    )
