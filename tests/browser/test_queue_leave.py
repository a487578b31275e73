"""A line nobody serves, in real Chromium (protocol 1.12): when the queue's last agent goes offline the queued
visitor is told at once and their chat waits on as a message left for later; and a queued visitor who closes the
page holds the lease only for the grace period, after which the sweep takes them out of the line and out of the
agents' waiting list."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.async_api import Browser, expect

from chat.models import Conversation, ConversationStatus
from queueing.models import ConversationRoute
from queueing.services.deadlines import queue_abandon_sweep
from tests.browser.conftest import (
    DemoSite,
    Person,
    console_login,
    in_thread,
    new_person,
    open_widget,
    set_presence,
    widget_frame,
)
from tests.browser.test_queue_widget import busy_alice  # noqa: F401 (the fixture: Alice busy with her one chat)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

UNSERVED = (
    "Everyone who could answer has gone offline. Your message is kept: we will reply here as soon as someone is back."
)


def _queued(name: str) -> dict[str, Any]:
    row = Conversation.objects.values("pk", "status", "visitor_away_deadline").get(
        tenant__slug="demo", contact__name=name
    )
    row["route"] = ConversationRoute.objects.values("abandoned_at", "unserved_at").get(conversation_id=row["pk"])
    return row


def _time_passes(conversation_id: int, seconds: int) -> None:
    """The grace period runs out: the lease's deadline, as written when the page closed, moved into the past."""
    Conversation.objects.filter(pk=conversation_id).update(
        visitor_away_deadline=timezone.now() - timedelta(seconds=seconds)
    )


async def _queue_up(browser: Browser, demo: DemoSite, name: str, message: str) -> tuple[Person, Any]:
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await widget.get_by_label("Your name").fill(name)
    await widget.get_by_label("How can we help?").fill(message)
    await widget.get_by_role("button", name="Start chat").click()
    await expect(widget.locator("#sb-queue")).to_contain_text("You are next in line")
    return visitor, widget


@pytest.mark.usefixtures("busy_alice")
async def test_the_last_agent_going_offline_tells_the_queued_visitor(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")
    visitor, widget = await _queue_up(browser, demo, "Olga Queued", "Is anyone there?")

    await set_presence(agent.page, "offline")
    # Told at once, in the chat and below it; out of the line, the message kept for whoever comes back.
    await expect(widget.locator(".sb-event", has_text="gone offline")).to_have_text(UNSERVED)
    await expect(widget.locator("#sb-queue")).to_be_empty()
    await expect(widget.locator("#sb-notice")).to_contain_text("your message was received")
    await expect(widget.locator("#sb-subtitle")).to_have_text("No one is available right now")
    olga = await in_thread(_queued, name="Olga Queued")
    assert olga["status"] == ConversationStatus.WAITING
    assert olga["route"]["unserved_at"] is not None

    # A reload keeps saying so (the config and the hello agree).
    await visitor.page.reload()
    widget = await widget_frame(visitor.page)
    await expect(widget.locator("#sb-notice")).to_contain_text("your message was received")
    await expect(widget.locator("#sb-queue")).to_be_empty()

    assert agent.errors == []
    assert visitor.errors == []
    for person in (agent, visitor):
        await person.context.close()


@pytest.mark.usefixtures("busy_alice")
async def test_a_visitor_who_closes_the_page_leaves_the_queue_after_the_grace(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")
    visitor, _widget = await _queue_up(browser, demo, "Pia Leaving", "Quick question")
    waiting = agent.page.locator("#cc-waiting-count")
    await expect(waiting).to_have_text("1")
    open_lease = (await in_thread(_queued, name="Pia Leaving"))["visitor_away_deadline"]
    assert isinstance(open_lease, datetime) and open_lease > timezone.now()

    # The page closes: the socket's last renewal starts the grace period from then; nothing happens before it.
    await visitor.context.close()
    pia = await in_thread(_queued, name="Pia Leaving")
    assert await in_thread(queue_abandon_sweep) == 0
    assert pia["status"] == ConversationStatus.WAITING

    await in_thread(_time_passes, conversation_id=pia["pk"], seconds=1)
    assert await in_thread(queue_abandon_sweep) == 1
    pia = await in_thread(_queued, name="Pia Leaving")
    assert pia["status"] == ConversationStatus.CLOSED
    assert pia["route"]["abandoned_at"] is not None
    await expect(waiting).to_have_text("0")

    assert agent.errors == []
    await agent.context.close()
