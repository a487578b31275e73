"""The reminder toast in real Chromium (protocol 1.15): its modes, chosen by the agent in the console's Reminders
popover and kept on their profile. An agent with two chats looks at one while the other's customer writes."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.contrib.auth import get_user_model
from playwright.async_api import Browser, Page, expect

from chat.models import Widget
from chat.selectors import AgentActor, VisitorActor
from chat.services import message_post
from chat.services.starting import conversation_start
from contactcenter.models import Role
from queueing.services import conversation_end
from tests.browser.conftest import DemoSite, console_login, in_thread
from tests.browser.test_routing_console import FAKE_NOTIFICATIONS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]


@pytest.fixture
def two_chats(demo: DemoSite) -> dict[str, int]:
    """Two chats waiting for the demo agent, each started with a message."""
    widget = Widget.objects.get(public_key=demo.public_key)
    victor = conversation_start(widget=widget, visitor_id="v-victor", answers={"name": "Victor"}, message="Hello")
    wendy = conversation_start(widget=widget, visitor_id="v-wendy", answers={"name": "Wendy"}, message="Hi there")
    return {"victor": victor.conversation.pk, "wendy": wendy.conversation.pk, "widget": widget.pk}


def _visitor_writes(*, chats: dict[str, int], body: str, agent_email: str = "", reply: str = "") -> None:
    """Wendy writes; with `reply`, the agent answers at once from elsewhere (another device)."""
    widget = Widget.objects.get(pk=chats["widget"])
    visitor = VisitorActor(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="v-wendy")
    message_post(actor=visitor, conversation_id=chats["wendy"], body=body, client_id=f"w-{body}")
    if reply:
        user = get_user_model().objects.get(email=agent_email)
        agent = AgentActor(tenant_id=widget.tenant_id, user=user, role=Role.AGENT)
        message_post(actor=agent, conversation_id=chats["wendy"], body=reply, client_id=f"a-{reply}")


def _visitor_writes_and_leaves(*, chats: dict[str, int], body: str) -> None:
    widget = Widget.objects.get(pk=chats["widget"])
    visitor = VisitorActor(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="v-wendy")
    message_post(actor=visitor, conversation_id=chats["wendy"], body=body, client_id=f"w-{body}")
    conversation_end(actor=visitor, conversation_id=chats["wendy"])


async def look_at(page: Page, tab_name: str) -> None:
    """The agent opens the chat's tab (a click on the open one would go back to the previous screen)."""
    tab = page.locator(".cc-tab", has_text=tab_name)
    if "is-active" not in (await tab.get_attribute("class") or ""):
        await tab.click()
    await expect(tab).to_have_class(re.compile("is-active"))


async def reply(page: Page, tab_name: str, text: str) -> None:
    """The agent opens the chat's tab and answers there."""
    await look_at(page, tab_name)
    pane = page.locator(".cc-chat.is-active")
    await pane.locator(".js-text").fill(text)
    await pane.locator(".js-text").press("Enter")
    await expect(pane.locator(".cc-msg.is-agent").last).to_have_attribute("data-status", re.compile("^(sent|seen)$"))


async def choose(page: Page, mode_label: str, seconds: int | None = None) -> None:
    """The agent picks their reminders in the header's popover and saves."""
    await page.get_by_role("button", name="Reminders").click()
    panel = page.locator("#cc-reminders-panel")
    await expect(panel).to_be_visible()
    await panel.get_by_label("Remind me").select_option(label=mode_label)
    if seconds is not None:
        await panel.get_by_label("Seconds without a reply").fill(str(seconds))
    await panel.get_by_role("button", name="Save").click()
    await expect(panel.locator("#cc-reminders-status")).to_have_text("Saved.")
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()


async def test_reminders_on_every_message_off_and_after_an_unanswered_wait(
    browser: Browser, demo: DemoSite, two_chats: dict[str, int]
):
    agent = await console_login(browser, demo)
    console = agent.page
    waiting = console.locator("#cc-home-waiting .cc-waiting-item")
    for name in ("Victor", "Wendy"):
        await waiting.filter(has_text=name).get_by_role("button", name="Accept").click()
        await expect(console.locator(".cc-tab.is-active", has_text=name)).to_be_visible()
        await console.locator("#cc-tab-home").click()
    await reply(console, "Wendy", "Hello Wendy")
    await reply(console, "Victor", "Hello Victor")  # the agent now looks at Victor's chat
    wendy_tab = console.locator(".cc-tab", has_text="Wendy")
    toasts = console.locator(".cc-toast")

    # Every message (the default): Wendy's message in the other chat brings a toast; a click opens her chat.
    await in_thread(_visitor_writes, chats=two_chats, body="Are you there?")
    toast = toasts.filter(has_text="New message from Wendy")
    await expect(toast).to_contain_text("Are you there?")
    await toast.click()
    await expect(wendy_tab).to_have_class(re.compile("is-active"))
    await reply(console, "Wendy", "Yes, here.")
    await look_at(console, "Victor")

    # Off: the tab still flashes, but no toast.
    await choose(console, "Off")
    await in_thread(_visitor_writes, chats=two_chats, body="Quick question")
    await expect(wendy_tab).to_have_class(re.compile("is-flashing"))
    await asyncio.sleep(1.5)
    await expect(toasts.filter(has_text="Quick question")).to_have_count(0)
    await reply(console, "Wendy", "Go ahead.")

    # After the customer's first unanswered message: a wait of 2 s, kept across a reload.
    await choose(console, "When a customer waits for a reply", seconds=2)
    await agent.context.add_init_script(FAKE_NOTIFICATIONS)  # a tab the test can hide, notifications allowed
    await console.reload()
    await console.evaluate("() => { Notification.permission = 'granted'; }")
    await expect(console.locator("#cc-presence")).to_be_enabled()
    await console.get_by_role("button", name="Reminders").click()
    await expect(console.locator("#cc-reminders-mode")).to_have_value("after_first_message")
    await expect(console.locator("#cc-reminders-seconds")).to_have_value("2")
    await console.keyboard.press("Escape")
    await look_at(console, "Victor")

    await in_thread(_visitor_writes, chats=two_chats, body="Is it in stock?")
    await in_thread(_visitor_writes, chats=two_chats, body="The blue one")
    await expect(toasts.filter(has_text="New message from Wendy")).to_have_count(0)
    reminder = toasts.filter(has_text="Wendy is waiting for a reply")
    await expect(reminder).to_have_count(1)
    await expect(reminder).to_contain_text("Is it in stock?")  # the first unanswered message
    await asyncio.sleep(3)
    await expect(reminder).to_have_count(1)  # one reminder per unanswered stretch
    await reminder.click()
    await expect(wendy_tab).to_have_class(re.compile("is-active"))
    await reply(console, "Wendy", "It is.")
    await look_at(console, "Victor")

    # With the console's tab in the background the reminder is a desktop notification; a click opens the chat.
    await console.evaluate("() => { window.__hidden = true; }")
    await in_thread(_visitor_writes, chats=two_chats, body="Hello again")
    await console.wait_for_function("() => window.__notifications.length === 1", timeout=15_000)
    shown = await console.evaluate("() => ({...window.__notifications[0], onclick: null})")
    assert (shown["title"], shown["body"], shown["tag"]) == (
        "Wendy is waiting for a reply",
        "Hello again",
        f"chat-{two_chats['wendy']}",
    )
    await console.evaluate("() => { window.__hidden = false; window.__notifications[0].onclick(); }")
    await expect(wendy_tab).to_have_class(re.compile("is-active"))
    assert await console.evaluate("() => window.__focused") == 1
    await reply(console, "Wendy", "Back now.")
    await look_at(console, "Victor")

    # Answered in time (from another device): no reminder.
    await in_thread(
        _visitor_writes, chats=two_chats, body="Thanks", agent_email=demo.agent_email, reply="You are welcome"
    )
    await expect(console.locator(".cc-chat .cc-msg.is-agent", has_text="You are welcome")).to_have_count(1)
    await asyncio.sleep(3.5)
    await expect(toasts.filter(has_text="waiting for a reply")).to_have_count(0)

    # Closed by the customer right after writing: nothing left to answer, no reminder.
    await in_thread(_visitor_writes_and_leaves, chats=two_chats, body="Bye")
    await expect(console.locator(".cc-chat .cc-event", has_text="Wendy ended the chat")).to_have_count(1)
    await asyncio.sleep(3.5)
    await expect(toasts.filter(has_text="waiting for a reply")).to_have_count(0)
    assert await console.evaluate("() => window.__notifications.length") == 1

    assert agent.errors == []
    await agent.context.close()
