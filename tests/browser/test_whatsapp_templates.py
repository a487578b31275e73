"""WhatsApp's 24-hour window in real Chromium, on the demo site as `make run` seeds it (a sandbox WhatsApp channel
and its approved templates): a reply the server refuses outside the window makes the composer say why and offer
the templates; one sent with its variable filled in shows in the conversation as the customer reads it and is
delivered through the relay (a real Celery worker, the sandbox provider)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.async_api import Browser, expect

from channels_switch.models import SandboxMessage
from chat.models import Channel, ConversationStatus, Message, Widget
from contactcenter.models import Membership
from tests.browser.conftest import DemoSite, console_login, in_thread
from tests.factories import ContactIdentityFactory, ConversationFactory, MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery,
    pytest.mark.asyncio(loop_scope="session"),
]

CUSTOMER = "+447911123456"
RENDERED = (
    "Hi, this is Demo Company about your order A-1042: it left our warehouse today. Reply here if you have a question."
)


def seed(*, agent_email: str) -> int:
    """A WhatsApp conversation of the demo agent's whose customer wrote an hour ago."""
    tenant = Widget.objects.get(tenant__slug="demo").tenant
    agent = Membership.objects.get(tenant=tenant, user__email=agent_email).user
    conversation = ConversationFactory(
        tenant=tenant, widget=None, channel=Channel.WHATSAPP, status=ConversationStatus.OPEN, assignee=agent
    )
    conversation.contact.name = "Wendy WhatsApp"
    conversation.contact.save()
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="whatsapp", value=CUSTOMER, verified=True)
    MessageFactory(tenant=tenant, conversation=conversation, body="Is my order on its way?", channel=Channel.WHATSAPP)
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=1))
    return conversation.pk


def window_runs_out(conversation_id: int) -> None:
    Message.objects.filter(conversation_id=conversation_id).update(created_at=timezone.now() - timedelta(hours=30))


async def test_outside_the_window_the_console_offers_the_templates(browser: Browser, demo: DemoSite, celery_worker):
    conversation_id = await in_thread(seed, agent_email=demo.agent_email)
    agent = await console_login(browser, demo)
    console = agent.page
    await console.locator(".cc-tab", has_text="Wendy WhatsApp").click()
    pane = console.locator(".cc-chat:visible")
    await expect(pane.locator(".js-channel")).to_have_text("WhatsApp")
    await expect(pane.locator(".cc-msg.is-visitor")).to_contain_text("Is my order on its way?")
    # Within the window: free text, no template picker.
    await expect(pane.locator(".js-text")).to_be_visible()
    await expect(pane.locator(".js-wa")).to_be_hidden()

    # The window runs out while the tab is open: the server refuses the reply, and the composer says why and
    # offers the approved templates instead of the text box.
    await in_thread(window_runs_out, conversation_id=conversation_id)
    await pane.locator(".js-text").fill("Are you still there?")
    await pane.locator(".js-send").click()
    refused = pane.locator(".cc-msg.is-agent", has_text="Are you still there?")
    await expect(refused).to_have_class(re.compile("is-failed"))
    panel = pane.locator(".js-wa")
    await expect(panel.locator(".js-wa-reason")).to_contain_text("more than 24 hours old")
    await expect(pane.locator(".js-text")).to_be_hidden()

    # A private note is still text.
    await pane.get_by_role("button", name="Private note").click()
    await expect(panel).to_be_hidden()
    await expect(pane.locator(".js-text")).to_be_visible()
    await pane.get_by_role("button", name="Reply", exact=True).click()
    await expect(panel).to_be_visible()

    # Pick a template, fill in its placeholders: the preview is what the customer will read.
    send = panel.get_by_role("button", name="Send template")
    await expect(send).to_be_hidden()  # nothing to send before a template is picked
    await panel.get_by_label("Template", exact=True).select_option(label="order_update (en)")
    await panel.get_by_label("{{1}}").fill("A-1042")
    await expect(send).to_be_disabled()
    await expect(panel.locator(".js-wa-missing")).to_have_text("Fill in {{2}} to send.")
    await panel.get_by_label("{{2}}").fill("it left our warehouse today")
    await expect(panel.locator(".js-wa-preview")).to_have_text(RENDERED)
    await send.click()

    sent = pane.locator(".cc-msg.is-agent", has_text="about your order A-1042")
    await expect(sent.locator(".cc-bubble")).to_have_text(RENDERED)
    await expect(sent.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    stored = await in_thread(lambda: list(SandboxMessage.objects.values_list("to_address", "body")))
    assert stored == [(CUSTOMER, RENDERED)]
    assert agent.errors == []

    # The customer answers in the sandbox outbox: the window opens again and the text box comes back.
    phone = await agent.context.new_page()
    await phone.goto(f"{demo.url}/sandbox/")
    thread = phone.locator(".sb-thread", has_text=CUSTOMER)
    await expect(thread.locator(".sb-out")).to_contain_text(RENDERED)
    await thread.get_by_placeholder(f"Reply as {CUSTOMER}").fill("Great, thanks!")
    await thread.get_by_role("button", name="Reply").click()
    await expect(pane.locator(".cc-msg.is-visitor", has_text="Great, thanks!")).to_be_visible()
    await expect(pane.locator(".js-text")).to_be_visible()
    await expect(panel).to_be_hidden()
    await agent.context.close()
