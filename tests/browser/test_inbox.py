"""The console's inbox in real Chromium, on the demo site as `make run` seeds it: a new web chat shows up live with
its unread count, which grows with the visitor's next message; the filters (mine / unassigned / all, channel,
status) narrow the list to what the agent may see; a row opens (or focuses) its conversation's tab, a closed one
included, and an unassigned waiting one is accepted from its row."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from chat.models import Channel, Conversation, ConversationStatus, Widget
from contactcenter.models import Membership, Role
from contactcenter.wiring.demo import DEMO_LOGINS
from tests.browser.conftest import DemoSite, console_login, in_thread, new_person, open_widget, set_presence
from tests.factories import ConversationFactory, MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]


def seed(*, agent_email: str) -> None:
    """Alice's open SMS conversation, her closed email one, and a colleague's web chat she may not see."""
    tenant = Widget.objects.get(tenant__slug="demo").tenant
    agent = Membership.objects.get(tenant=tenant, user__email=agent_email).user
    colleague_email = next(
        login.email for login in DEMO_LOGINS if login.role == Role.AGENT and login.email != agent_email
    )
    colleague = Membership.objects.get(tenant=tenant, user__email=colleague_email).user

    def conversation(name: str, **fields) -> Conversation:
        made = ConversationFactory(tenant=tenant, **fields)
        made.contact.name = name
        made.contact.save()
        return made

    sms = conversation("Sam Sms", widget=None, channel=Channel.SMS, status=ConversationStatus.OPEN, assignee=agent)
    MessageFactory(tenant=tenant, conversation=sms, body="Where is my parcel?", channel=Channel.SMS)
    conversation("Eve Email", widget=None, channel=Channel.EMAIL, status=ConversationStatus.CLOSED, assignee=agent)
    conversation("Carl Colleague", status=ConversationStatus.OPEN, assignee=colleague)


async def read_by_agents(contact_name: str) -> None:
    def marker() -> int:
        conversation = Conversation.objects.get(contact__name=contact_name)
        return conversation.last_seq - conversation.agent_read_seq

    for _ in range(100):
        if await in_thread(marker) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the console never marked {contact_name}'s conversation read")


def rows(page: Page) -> Locator:
    return page.locator("#cc-inbox-list .cc-inbox-row .cc-item-title")


async def test_the_inbox_lists_filters_and_opens_conversations_live(browser: Browser, demo: DemoSite):
    await in_thread(seed, agent_email=demo.agent_email)
    agent = await console_login(browser, demo)
    console = agent.page
    await set_presence(console, "online")
    await console.locator("#cc-tab-inbox").click()
    await expect(console.locator("#cc-pane-inbox")).to_be_visible()
    # Open or waiting, everyone's she may see: her SMS conversation; never a colleague's, not the closed one.
    await expect(rows(console)).to_have_text(["Sam Sms"])
    sms_row = console.locator(".cc-inbox-row", has_text="Sam Sms")
    await expect(sms_row.locator(".cc-channel")).to_have_text("SMS")
    await expect(sms_row.locator(".cc-inbox-unread")).to_have_text("1")
    await expect(sms_row.locator(".cc-inbox-preview")).to_have_text("Where is my parcel?")

    # A visitor starts a web chat: it arrives at the top, live, waiting and unread.
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await widget.get_by_label("Your name").fill("Wendy Web")
    await widget.get_by_label("How can we help?").fill("Do you ship to Norway?")
    await widget.get_by_role("button", name="Start chat").click()
    await expect(rows(console)).to_have_text(["Wendy Web", "Sam Sms"])
    web_row = console.locator(".cc-inbox-row", has_text="Wendy Web")
    await expect(web_row.locator(".cc-inbox-status")).to_have_text("Waiting")
    await expect(web_row.locator(".cc-inbox-unread")).to_have_text("1")
    await expect(web_row.locator(".cc-inbox-preview")).to_have_text("Do you ship to Norway?")
    text = widget.locator("#sb-text")
    await text.fill("And to Iceland?")
    await text.press("Enter")
    await expect(web_row.locator(".cc-inbox-unread")).to_have_text("2")
    await expect(web_row.locator(".cc-inbox-preview")).to_have_text("And to Iceland?")

    # Filters: whose, channel, status.
    await console.get_by_role("button", name="Mine", exact=True).click()
    await expect(rows(console)).to_have_text(["Sam Sms"])
    await console.get_by_role("button", name="Unassigned", exact=True).click()
    await expect(rows(console)).to_have_text(["Wendy Web"])
    await console.get_by_role("button", name="All", exact=True).click()
    await console.locator("#cc-inbox-channel").select_option("sms")
    await expect(rows(console)).to_have_text(["Sam Sms"])
    await console.locator("#cc-inbox-channel").select_option("")
    await console.locator("#cc-inbox-status").select_option("closed")
    await expect(rows(console)).to_have_text(["Eve Email"])

    # A closed conversation of hers opens in a tab, as ended.
    await console.locator(".cc-inbox-row", has_text="Eve Email").click()
    closed_tab = console.locator(".cc-tab", has_text="Eve Email")
    await expect(closed_tab).to_have_attribute("aria-selected", "true")
    pane = console.locator(".cc-chat.is-active")
    await expect(pane.locator(".js-ended")).to_have_text("This conversation is closed.")
    await expect(pane.locator(".js-composer")).to_be_hidden()
    await expect(pane.locator(".js-channel")).to_have_text("Email")

    # An open one opens with its messages, and clicking its row again goes back to the same tab.
    await console.locator("#cc-tab-inbox").click()
    await console.locator("#cc-inbox-status").select_option("active")
    await console.locator(".cc-inbox-row", has_text="Sam Sms").click()
    pane = console.locator(".cc-chat.is-active")
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["Where is my parcel?"])
    await expect(console.locator(".cc-tab", has_text="Sam Sms")).to_have_count(1)
    # Seeing it read its message (the console marks it read a moment after showing it): back in the inbox, it
    # has nothing unread.
    await read_by_agents("Sam Sms")
    await console.locator("#cc-tab-inbox").click()
    await expect(console.locator(".cc-inbox-row", has_text="Sam Sms").locator(".cc-inbox-unread")).to_have_count(0)
    await console.locator(".cc-inbox-row", has_text="Sam Sms").click()
    await expect(console.locator(".cc-tab", has_text="Sam Sms")).to_have_count(1)
    await expect(console.locator(".cc-tab", has_text="Sam Sms")).to_have_attribute("aria-selected", "true")

    # The waiting web chat is not hers yet: she sees it as the contact's history (their page), or accepts it from
    # its row, which opens its tab; the row then says open and assigned.
    await console.locator("#cc-tab-inbox").click()
    async with agent.context.expect_page() as opened:
        await web_row.locator(".cc-item-title").click()
    history = await opened.value
    await expect(history).to_have_url(re.compile(r"/console/contacts/\d+/$"))
    await expect(history.get_by_text("Do you ship to Norway?")).to_be_visible()
    await history.close()
    await web_row.get_by_role("button", name="Accept").click()
    await expect(console.locator(".cc-tab", has_text="Wendy Web")).to_have_attribute("aria-selected", "true")
    await console.locator("#cc-tab-inbox").click()
    await expect(web_row.locator(".cc-inbox-status")).to_have_text("Open")
    await expect(web_row).to_contain_text(f"Assigned to {demo.agent_name}")
    assert agent.errors == [] and visitor.errors == []


async def test_a_supervisor_follows_a_colleagues_conversation_read_only(browser: Browser, demo: DemoSite):
    await in_thread(seed, agent_email=demo.agent_email)
    supervisor = next(login for login in DEMO_LOGINS if login.role == Role.SUPERVISOR)
    site = dataclasses.replace(demo, agent_email=supervisor.email, agent_password=supervisor.password)
    console = (await console_login(browser, site)).page
    await console.locator("#cc-tab-inbox").click()
    # Everyone's conversations of the tenant, the colleagues' included.
    await expect(rows(console)).to_have_text(["Carl Colleague", "Sam Sms"])
    await console.locator(".cc-inbox-row", has_text="Sam Sms").click()
    tab = console.locator(".cc-tab", has_text="Sam Sms")
    await expect(tab).to_have_attribute("aria-selected", "true")
    pane = console.locator(".cc-chat.is-active")
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["Where is my parcel?"])
    # A supervisor following a colleague's chat whispers (private notes only: no reply, no files, no templates).
    await expect(pane.locator(".js-composer")).to_be_visible()
    await expect(pane.locator('.js-mode[data-mode="reply"]')).to_be_hidden()
    await expect(pane.locator('.js-mode[data-mode="note"]')).to_have_text("Whisper (only agents see it)")
    await expect(pane.locator(".js-attach")).to_be_hidden()
    await expect(pane.locator(".cc-drop-hint")).to_be_hidden()
    await expect(pane.locator(".js-disposition")).to_be_hidden()
    await expect(pane.locator(".js-important")).to_be_disabled()
    # Following it moves nobody's read marker: it is still unread for the agents.
    await pane.get_by_role("button", name="Close tab").click()
    await expect(tab).to_have_count(0)
    await expect(console.locator("#cc-pane-inbox")).to_be_visible()
    await expect(console.locator(".cc-inbox-row", has_text="Sam Sms").locator(".cc-inbox-unread")).to_have_text("1")
