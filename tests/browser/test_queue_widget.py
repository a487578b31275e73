"""Queueing as the visitor sees it, in real Chromium (protocol 1.10): their place in line, live and after a reload,
until an agent takes the chat; and, when the chat cannot wait, why the widget offers the offline form instead."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.async_api import Browser, Frame, expect

from agents.models import AgentProfile
from chat.models import Conversation, ConversationStatus, Widget
from chat.selectors import VisitorActor, agent_actor_for
from chat.services import widget_save
from chat.services.starting import conversation_start
from contactcenter.models import Role
from contactcenter.wiring.demo import DEMO_LOGINS
from queueing.models import Queue
from queueing.services import conversation_accept, conversation_end, conversation_request
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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

# The demo team's second agent (offline throughout): takes a chat from the test process, as from another console.
BOB = next(login for login in DEMO_LOGINS if login.role == Role.AGENT and login.first_name == "Bob")
# "about 3 min" or "less than a minute" when the server has an estimate; nothing more when it has none.
WAIT = r"( · (about \d+ min|less than a minute))?"
QUEUE_FULL = "All our agents are busy and the queue is full. Leave a message and we will reply."
ALL_BUSY = "All our agents are busy right now. Leave a message and we will reply."


def _demo_widget() -> Widget:
    return Widget.objects.select_related("tenant").get(tenant__slug="demo")


def _demo_queue() -> Queue:
    return Queue.objects.get(routes__widget=_demo_widget())


def _accept(email: str, conversation_id: int) -> None:
    """Accepted by that agent, as from their console."""
    actor = agent_actor_for(get_user_model().objects.get(email=email))
    assert actor is not None
    conversation_accept(actor=actor, conversation_id=conversation_id)


def _conversation_of(name: str) -> dict[str, Any]:
    return Conversation.objects.values("pk", "status", "started_offline").get(tenant__slug="demo", contact__name=name)


@pytest.fixture
def busy_alice(demo: DemoSite) -> dict[str, Any]:
    """The demo agent takes one chat at a time and has one already (with Bea); offers wait for her answer as long
    as it takes (no agent is paused for a slow test machine)."""
    AgentProfile.objects.filter(user__email=demo.agent_email).update(max_chats=1)
    Queue.objects.filter(pk=_demo_queue().pk).update(answer_seconds=0)
    widget = _demo_widget()
    bea = conversation_start(widget=widget, visitor_id="v-bea", answers={"name": "Busy Bea"}).conversation
    _accept(demo.agent_email, bea.pk)
    return {"conversation": bea.pk, "tenant": widget.tenant_id, "widget": widget.pk}


async def _online(browser: Browser, demo: DemoSite) -> Person:
    """The demo agent in the console, online (with her one chat: no room for another)."""
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")
    return agent


async def _start_chat(browser: Browser, demo: DemoSite, name: str, message: str) -> tuple[Person, Frame]:
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await widget.get_by_label("Your name").fill(name)
    await widget.get_by_label("How can we help?").fill(message)
    await widget.get_by_role("button", name="Start chat").click()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text(message)
    return visitor, widget


async def _leave_message(widget: Frame, name: str, message: str) -> None:
    await widget.get_by_label("Your name").fill(name)
    await widget.get_by_label("Your message").fill(message)
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text(message)
    await expect(widget.locator("#sb-notice")).to_contain_text("your message was received")


async def test_a_queued_visitor_sees_their_place_fall_until_an_agent_takes_the_chat(
    browser: Browser, demo: DemoSite, busy_alice: dict[str, Any]
):
    agent = await _online(browser, demo)
    console = agent.page

    # Everyone online is busy, the widget queues: two visitors start chats and wait, in order.
    first, first_widget = await _start_chat(browser, demo, "Quinn First", "Is my parcel lost?")
    first_place = first_widget.locator("#sb-queue")
    await expect(first_place).to_have_attribute("aria-live", "polite")
    await expect(first_place).to_have_text(re.compile(f"^You are next in line{WAIT}$"))
    await expect(first_widget.locator("#sb-subtitle")).to_have_text("Waiting for an agent…")
    second, second_widget = await _start_chat(browser, demo, "Rita Second", "Can I change my address?")
    place = second_widget.locator("#sb-queue")
    await expect(place).to_have_text(re.compile(f"^You are number 2 in line{WAIT}$"))
    await expect(second_widget.locator("#sb-notice")).to_be_hidden()

    # A reload says where they are straight from the socket's hello.
    await second.page.reload()
    second_widget = await widget_frame(second.page)
    place = second_widget.locator("#sb-queue")
    await expect(place).to_have_text(re.compile(f"^You are number 2 in line{WAIT}$"))

    # Another agent takes the first chat: its visitor is told who is here, the second moves up without a reload.
    quinn = await in_thread(_conversation_of, name="Quinn First")
    await in_thread(_accept, email=BOB.email, conversation_id=quinn["pk"])
    await expect(first_widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {BOB.first_name}")
    await expect(first_widget.locator(".sb-event", has_text="joined the chat")).to_have_text(
        f"{BOB.first_name} joined the chat"
    )
    await expect(first_place).to_be_empty()
    await expect(place).to_have_text(re.compile(f"^You are next in line{WAIT}$"))

    # Bea leaves; the demo agent has room, is offered the waiting chat and accepts it: the place line goes.
    bea = VisitorActor(tenant_id=busy_alice["tenant"], widget_id=busy_alice["widget"], visitor_id="v-bea")
    await in_thread(conversation_end, actor=bea, conversation_id=busy_alice["conversation"])
    offer = console.locator(".cc-offer")
    await expect(offer.locator(".cc-offer-name")).to_have_text("Rita Second")
    await offer.get_by_role("button", name="Accept").click()
    await expect(second_widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")
    await expect(second_widget.locator(".sb-event", has_text="joined the chat")).to_have_text(
        f"{demo.agent_name} joined the chat"
    )
    await expect(place).to_be_empty()
    rita = await in_thread(_conversation_of, name="Rita Second")
    assert rita["status"] == ConversationStatus.OPEN
    assert rita["started_offline"] is False

    assert agent.errors == []
    assert first.errors == []
    assert second.errors == []
    for person in (agent, first, second):
        await person.context.close()


def _queue_capacity(capacity: int) -> None:
    Queue.objects.filter(pk=_demo_queue().pk).update(capacity_kind="fixed", capacity=capacity)


def _request(visitor_id: str, name: str) -> int:
    """A visitor's start from the survey, as the widget's start makes it (routed to the demo queue)."""
    return conversation_request(
        widget=_demo_widget(), visitor_id=visitor_id, answers={"name": name}, message="Hello?"
    ).conversation.pk


async def test_a_full_queue_keeps_new_chats_as_offline_messages_and_says_why(
    browser: Browser, demo: DemoSite, busy_alice: dict[str, Any]
):
    await in_thread(_queue_capacity, capacity=1)
    agent = await _online(browser, demo)

    # The queue has its one place free when the page loads; another visitor takes it before this one starts.
    late = await new_person(browser)
    late_widget = await open_widget(late.page, demo)
    await expect(late_widget.get_by_role("button", name="Start chat")).to_be_visible()
    await in_thread(_request, visitor_id="v-fay", name="Fay First")
    await late_widget.get_by_label("Your name").fill("Leo Late")
    await late_widget.get_by_label("How can we help?").fill("Do you ship to Norway?")
    await late_widget.get_by_role("button", name="Start chat").click()
    # Nothing is lost: it is kept as a message, and the visitor is told it will be answered later.
    await expect(late_widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text("Do you ship to Norway?")
    await expect(late_widget.locator("#sb-notice")).to_have_text(
        "Thanks, your message was received. No one could take your chat just now: we will reply here as soon as we can."
    )
    await expect(late_widget.locator("#sb-queue")).to_be_empty()

    # A visitor who comes now is told the queue is full, above the form for a message.
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await expect(widget.locator("#sb-intro")).to_have_text(QUEUE_FULL)
    await expect(widget.locator("#sb-subtitle")).to_have_text("All our agents are busy")
    await _leave_message(widget, "Gus Guest", "Please call me about my order.")
    await expect(widget.locator("#sb-notice")).to_have_text(
        "Thanks, your message was received. All our agents are busy: we will reply here as soon as we can."
    )
    await expect(widget.locator("#sb-queue")).to_be_empty()

    fay = await in_thread(_conversation_of, name="Fay First")
    leo = await in_thread(_conversation_of, name="Leo Late")
    gus = await in_thread(_conversation_of, name="Gus Guest")
    assert (fay["status"], fay["started_offline"]) == (ConversationStatus.WAITING, False)
    assert (leo["status"], leo["started_offline"]) == (ConversationStatus.WAITING, True)
    assert (gus["status"], gus["started_offline"]) == (ConversationStatus.WAITING, True)

    assert agent.errors == []
    assert late.errors == []
    assert visitor.errors == []
    for person in (agent, late, visitor):
        await person.context.close()


@pytest.fixture
def no_queueing(busy_alice: dict[str, Any]) -> None:
    """The demo widget lets no visitor wait: with everyone busy it offers the offline form at once."""
    widget = _demo_widget()
    widget_save(tenant=widget.tenant, instance=widget, queueing_enabled=False)


async def test_a_widget_that_does_not_queue_says_everyone_is_busy(browser: Browser, demo: DemoSite, no_queueing):
    agent = await _online(browser, demo)
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)

    await expect(widget.locator("#sb-intro")).to_have_text(ALL_BUSY)
    await expect(widget.locator("#sb-subtitle")).to_have_text("All our agents are busy")
    await _leave_message(widget, "Hana Hurry", "When do you open tomorrow?")
    await expect(widget.locator("#sb-queue")).to_be_empty()
    hana = await in_thread(_conversation_of, name="Hana Hurry")
    assert hana["started_offline"] is True

    assert agent.errors == []
    assert visitor.errors == []
    for person in (agent, visitor):
        await person.context.close()
