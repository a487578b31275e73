"""The sockets' message writer: concurrent posts share database calls, and each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connections

from chat import message_writer
from chat.models import Message
from chat.selectors import VisitorActor
from chat.services.starting import conversation_start
from contactcenter.errors import ApplicationError
from tests.factories import WidgetFactory

pytestmark = pytest.mark.django_db(transaction=True)


def start() -> tuple[VisitorActor, int]:
    widget = WidgetFactory()
    conversation = conversation_start(widget=widget, visitor_id="v-batch", answers={"name": "Jane"}).conversation
    return VisitorActor(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="v-batch"), conversation.pk


async def test_concurrent_posts_share_database_calls_and_each_gets_its_own_result_or_error(monkeypatch, settings):
    settings.MESSAGE_RATE_COUNT = 1000
    actor, conversation_id = await database_sync_to_async(start)()
    batches: list[int] = []
    real_post_each = message_writer._post_each

    def counting(batch):
        batches.append(len(batch))
        return real_post_each(batch)

    monkeypatch.setattr(message_writer, "_post_each", counting)
    bodies = [f"m{i}" for i in range(40)]
    bodies[7] = "   "  # refused: empty
    posts = [
        message_writer.post_message(actor=actor, conversation_id=conversation_id, body=body, client_id=f"c{i}")
        for i, body in enumerate(bodies)
    ]
    outcomes = await asyncio.gather(*posts, return_exceptions=True)
    assert isinstance(outcomes[7], ApplicationError) and outcomes[7].code == "message_empty"
    stored = [o for i, o in enumerate(outcomes) if i != 7]
    assert all(o.created for o in stored)
    assert sorted(o.message.seq for o in stored) == list(range(1, 40))
    assert sum(batches) == 40 and len(batches) < 40 and max(batches) <= message_writer.MAX_BATCH
    count = await database_sync_to_async(Message.objects.filter(conversation_id=conversation_id).count)()
    assert count == 39
    await sync_to_async(connections.close_all)()


async def test_a_lone_post_is_not_held_back(settings):
    actor, conversation_id = await database_sync_to_async(start)()
    result = await asyncio.wait_for(
        message_writer.post_message(actor=actor, conversation_id=conversation_id, body="hi", client_id="one"),
        timeout=10,
    )
    assert result.created and result.message.seq == 1
    await sync_to_async(connections.close_all)()
