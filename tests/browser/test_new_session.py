"""An agent starts a session with a customer by SMS from the console (seed 003), in real Chromium against the demo
tenant's sandbox SMS channel: "+ New session", a number without its country code refused in the dialog with what
SMS needs, a good one accepted, the new chat open as the agent's tab, the first reply relayed (a real Celery
worker) to the sandbox provider, the customer's answer verifying the number in the open tab; a second start with
the same customer taking the agent to the open one, and once it is closed, reopening it from the dialog; and a
WhatsApp session, which has no customer-service window yet, opening with an approved template the composer offers."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from channels_switch.models import SandboxMessage
from chat.models import Conversation
from tests.browser.conftest import DemoSite, console_login, in_thread

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery,
    pytest.mark.asyncio(loop_scope="session"),
]

CUSTOMER = "+447911123456"


async def test_an_agent_starts_an_sms_session_and_the_customer_gets_the_message(
    browser: Browser, demo: DemoSite, celery_worker
):
    agent = await console_login(browser, demo)
    console = agent.page

    await console.locator("button", has_text="+ New session").click()
    dialog = console.locator("#cc-new-session")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Channel").select_option(label="SMS")
    await expect(dialog.locator("#cc-ns-hint")).to_have_text(
        "SMS needs a phone number in international format, like +14155550123."
    )
    await dialog.get_by_label("Name of the new contact").fill("Nia <b>New</b>")

    # A number without + and the country code: refused in the dialog, which stays open.
    await dialog.get_by_label("Account").fill("07911 123456")
    await dialog.locator("button", has_text="Create").click()
    error = dialog.locator("#cc-ns-error")
    await expect(error).to_have_text(
        "SMS needs a phone number in international format, like +14155550123. Start with + and the country code."
    )
    # An email address for SMS: the same, saying so.
    await dialog.get_by_label("Account").fill("nia@example.com")
    await dialog.locator("button", has_text="Create").click()
    await expect(error).to_contain_text("An email address cannot receive it.")
    assert await in_thread(lambda: Conversation.objects.count()) == 0

    await dialog.get_by_label("Account").fill("+44 7911 123456")
    await dialog.locator("button", has_text="Create").click()
    await expect(dialog).to_be_hidden()

    # The new chat is the agent's open tab, named as typed (as text, not markup).
    tab = console.locator(".cc-tab", has_text="Nia <b>New</b>")
    await expect(tab).to_have_attribute("aria-selected", "true")
    await expect(tab.locator(".cc-tab-channel")).to_have_text("SMS")
    pane = console.locator(".cc-chat:visible")
    await expect(pane.locator(".js-channel")).to_have_text("SMS")
    await pane.locator(".js-text").fill("Hello Nia, this is the demo shop about your order.")
    await pane.locator(".js-send").click()
    sent = pane.locator(".cc-msg.is-agent", has_text="about your order")
    await expect(sent.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    stored = await in_thread(lambda: list(SandboxMessage.objects.values_list("channel", "to_address", "body")))
    assert stored == [("sms", CUSTOMER, "Hello Nia, this is the demo shop about your order.")]
    conversation = await in_thread(lambda: Conversation.objects.values("status", "assignee__email").get())
    assert conversation == {"status": "open", "assignee__email": demo.agent_email}

    # The customer's phone (the sandbox outbox) shows it.
    phone = await agent.context.new_page()
    await phone.goto(f"{demo.url}/sandbox/")
    thread = phone.locator(".sb-thread", has_text=CUSTOMER)
    await expect(thread.locator(".sb-out")).to_contain_text("Hello Nia, this is the demo shop about your order.")
    # The number the agent typed is unverified until the customer answers from it; then the open tab says so.
    number = pane.locator(".js-customer dd", has_text=CUSTOMER)
    await expect(number.locator(".cc-badge")).to_have_text("Unverified")
    await thread.locator("textarea").fill("Thanks, that's me")
    await thread.get_by_role("button", name="Reply").click()
    await expect(pane.locator(".cc-msg.is-visitor", has_text="Thanks, that's me")).to_be_visible()
    await expect(number.locator(".cc-badge")).to_have_text("Verified")
    await phone.close()

    # Starting again with the same customer (found by name) takes the agent to the open session instead.
    await console.locator("#cc-tab-home").click()
    await console.locator("button", has_text="+ New session").click()
    await dialog.get_by_label("Channel").select_option(label="SMS")
    await dialog.get_by_label("Customer").fill("Nia")
    await dialog.locator("#cc-ns-contacts button", has_text="Nia <b>New</b>").click()
    await expect(dialog.get_by_label("Account")).to_have_value(CUSTOMER)
    await dialog.locator("button", has_text="Create").click()
    await expect(dialog).to_be_hidden()
    await expect(tab).to_have_attribute("aria-selected", "true")
    assert await in_thread(lambda: Conversation.objects.count()) == 1

    # Closed, the session is offered for reopening in the dialog, and comes back as Alice's, with its history.
    await pane.locator(".js-disposition").select_option(label="Resolved")
    await pane.locator(".js-close").click()
    await expect(tab).to_be_hidden()
    await console.locator("button", has_text="+ New session").click()
    await dialog.get_by_label("Channel").select_option(label="SMS")
    await dialog.get_by_label("Customer").fill("7911123")
    await dialog.locator("#cc-ns-contacts button", has_text="Nia <b>New</b>").click()
    await dialog.locator("button", has_text="Reopen their last session instead").click()
    await expect(dialog).to_be_hidden()
    await expect(tab).to_have_attribute("aria-selected", "true")
    pane = console.locator(".cc-chat:visible")
    await expect(pane.locator(".cc-msg.is-agent", has_text="about your order")).to_be_visible()
    await expect(pane.locator(".js-text")).to_be_visible()
    reopened = await in_thread(lambda: Conversation.objects.values("status", "assignee__email").get())
    assert reopened == {"status": "open", "assignee__email": demo.agent_email}
    assert agent.errors == []
    await agent.context.close()


async def test_a_whatsapp_session_opens_with_an_approved_template(browser: Browser, demo: DemoSite, celery_worker):
    agent = await console_login(browser, demo)
    console = agent.page
    await console.locator("button", has_text="+ New session").click()
    dialog = console.locator("#cc-new-session")
    await dialog.get_by_label("Channel").select_option(label="WhatsApp")
    await expect(dialog.locator("#cc-ns-hint")).to_have_text(
        "WhatsApp needs a phone number in international format, like +14155550123."
    )
    await dialog.get_by_label("Name of the new contact").fill("Wes")
    await dialog.get_by_label("Account").fill("wes@example.com")
    await dialog.locator("button", has_text="Create").click()
    await expect(dialog.locator("#cc-ns-error")).to_contain_text("An email address cannot receive it.")
    await dialog.get_by_label("Account").fill(CUSTOMER)
    await dialog.locator("button", has_text="Create").click()
    await expect(dialog).to_be_hidden()

    # A new session has no customer-service window: the composer offers the approved templates instead of text.
    pane = console.locator(".cc-chat:visible")
    await expect(pane.locator(".js-channel")).to_have_text("WhatsApp")
    panel = pane.locator(".js-wa")
    await expect(panel.locator(".js-wa-reason")).to_contain_text("has not written on WhatsApp yet")
    await expect(pane.locator(".js-text")).to_be_hidden()
    await panel.get_by_label("Template", exact=True).select_option(label="order_update (en)")
    await panel.get_by_label("{{1}}").fill("A-1042")
    await panel.get_by_label("{{2}}").fill("it left our warehouse today")
    await panel.get_by_role("button", name="Send template").click()
    sent = pane.locator(".cc-msg.is-agent", has_text="about your order A-1042")
    await expect(sent.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    stored = await in_thread(lambda: list(SandboxMessage.objects.values_list("channel", "to_address")))
    assert stored == [("whatsapp", CUSTOMER)]
    assert agent.errors == []
    await agent.context.close()
