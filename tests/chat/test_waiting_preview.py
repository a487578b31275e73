"""A chat offered before the visitor wrote anything: its first message is announced to the agents who may
pick it up (`waiting.preview`), on the one-statement path and on the full one."""

from __future__ import annotations

import pytest
from django.db import transaction

from chat.services import message_post
from contactcenter.realtime import tenant_agents_group
from queueing.models import Offer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def previews(published):
    return [(group, event) for group, event in published if event["type"] == "waiting.preview"]


@pytest.mark.parametrize("path", ["one statement", "full"])
def test_the_first_visitor_message_of_a_waiting_chat_is_announced_once(
    path, widget, queue, online, visitor, conversation, published
):
    offered = Offer.objects.filter(conversation=conversation).values_list("agent_id", flat=True)
    assert list(offered) == [online.pk]  # offered by its routing, with no preview yet

    def post(body: str, client_id: str) -> None:
        if path == "full":
            with transaction.atomic():  # inside a transaction message_post takes the full path
                message_post(actor=visitor, conversation_id=conversation.pk, body=body, client_id=client_id)
        else:
            message_post(actor=visitor, conversation_id=conversation.pk, body=body, client_id=client_id)

    post("Hello, my parcel is late", "v-1")
    assert previews(published) == [
        (
            tenant_agents_group(conversation.tenant_id),
            {
                "type": "waiting.preview",
                "conversation_id": conversation.pk,
                "preview": "Hello, my parcel is late",
                "queue_id": queue.pk,
            },
        )
    ]
    post("Anyone?", "v-2")
    post("Hello, my parcel is late", "v-1")  # a resend stores and announces nothing
    assert len(previews(published)) == 1


def test_messages_of_an_open_chat_announce_no_preview(visitor, assigned, published):
    message_post(actor=visitor, conversation_id=assigned.pk, body="Hi again", client_id="v-9")
    assert previews(published) == []
