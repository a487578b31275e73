"""Merging two contacts: one customer known twice (a web visitor who later texted, an email and a phone typed
into two surveys) becomes one contact holding every identity and conversation of both, once."""

from __future__ import annotations

from django.db import transaction

from chat.models import Conversation
from contactcenter.errors import ApplicationError, NotFound
from contactcenter.models import Contact, ContactIdentity, ContactMerge
from contactcenter.services.webhooks_out import CONTACT_MERGED, contact_merged_data, webhook_event_record


@transaction.atomic
def contact_merge(*, tenant_id: int, contact_id: int, merged_contact_id: int, merged_by: str) -> ContactMerge:
    """Moves every identity and conversation of `merged_contact_id` onto `contact_id`, deletes the merged contact
    and records the merge on the one kept (`contact.merged` goes to the integrators' webhooks).

    Both rows are locked, in id order, first: an inbound message resolving its sender to either contact locks
    the contact it found (channels_switch's `conversation_for_sender`) before it writes, so it either lands
    before the merge (and its conversation moves with the rest) or finds the merged contact gone and resolves
    again, to the one kept. Nothing is lost and nothing is written twice.

    An address both contacts hold stays once, verified if either had it verified and opted out if either was.
    """
    if int(contact_id) == int(merged_contact_id):
        raise ApplicationError(
            "same_contact", "A contact cannot be merged into itself.", {"merge_contact_id": ["Another contact."]}
        )
    locked = {
        contact.pk: contact
        for contact in Contact.objects.for_tenant(tenant_id)
        .select_for_update()
        .filter(pk__in=[contact_id, merged_contact_id])
        .order_by("pk")
    }
    kept, merged = locked.get(int(contact_id)), locked.get(int(merged_contact_id))
    if kept is None:
        raise NotFound("contact")
    if merged is None:
        raise ApplicationError(
            "not_found", "No such contact to merge.", {"merge_contact_id": ["No such contact."]}, status=404
        )
    identities = list(ContactIdentity.objects.for_tenant(tenant_id).filter(contact=merged).order_by("pk"))
    held = {
        (identity.kind, identity.value): identity
        for identity in ContactIdentity.objects.for_tenant(tenant_id).filter(contact=kept)
    }
    moved_ids: list[int] = []
    for identity in identities:
        same = held.get((identity.kind, identity.value))
        if same is None:
            moved_ids.append(identity.pk)
            continue
        # Held by both: the merged one's row goes (before the kept one takes its verification: a verified
        # address is unique in the tenant), and what it proved or asked for carries over.
        identity.delete()
        changed = []
        if identity.verified and not same.verified:
            same.verified = True
            changed.append("verified")
        if identity.opted_out_at is not None and same.opted_out_at is None:
            same.opted_out_at = identity.opted_out_at
            changed.append("opted_out_at")
        if changed:
            same.save(update_fields=changed)
    ContactIdentity.objects.for_tenant(tenant_id).filter(pk__in=moved_ids).update(contact=kept)
    moved = Conversation.objects.for_tenant(tenant_id).filter(contact=merged).update(contact=kept)
    if not kept.name and merged.name:
        kept.name = merged.name
        kept.save(update_fields=["name", "updated_at"])
    record = ContactMerge.objects.create(
        tenant_id=tenant_id,
        contact=kept,
        merged_contact_id=merged.pk,
        merged_name=merged.name,
        identities=[{"kind": i.kind, "value": i.value, "verified": i.verified} for i in identities],
        conversations_moved=moved,
        merged_by=merged_by[:200],
    )
    # The merged contact's earlier merges are history of the one kept now.
    ContactMerge.objects.for_tenant(tenant_id).filter(contact=merged).update(contact=kept)
    Contact.objects.for_tenant(tenant_id).filter(pk=merged.pk).delete()
    webhook_event_record(
        tenant_id=tenant_id,
        type=CONTACT_MERGED,
        data=contact_merged_data(kept_contact_id=kept.pk, merged_contact_id=merged.pk),
    )
    return record
