"""Conversations on a provider's channel in the console, in real Chromium: the channel badge, and each reply's
delivery as the relay (a real Celery worker, the sandbox provider) reports it, or why it failed."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from channels_switch.models import ChannelConnector, SandboxMessage
from chat.models import Channel, ConversationStatus, Widget
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


def seed(*, agent_email: str) -> dict[str, int]:
    tenant = Widget.objects.get(tenant__slug="demo").tenant
    agent = Membership.objects.get(tenant=tenant, user__email=agent_email).user
    # The demo tenant's channels are on the sandbox already (as `make run` seeds them).
    assert ChannelConnector.objects.filter(tenant=tenant, kind="sms", provider="sandbox").exists()
    reachable = ConversationFactory(
        tenant=tenant, widget=None, channel=Channel.SMS, status=ConversationStatus.OPEN, assignee=agent
    )
    reachable.contact.name = "Sam Sms"
    reachable.contact.save()
    ContactIdentityFactory(tenant=tenant, contact=reachable.contact, kind="phone", value=CUSTOMER, verified=True)
    MessageFactory(tenant=tenant, conversation=reachable, body="Where is my parcel?", channel=Channel.SMS)
    unreachable = ConversationFactory(
        tenant=tenant, widget=None, channel=Channel.SMS, status=ConversationStatus.OPEN, assignee=agent
    )
    unreachable.contact.name = "Nora Nonumber"
    unreachable.contact.save()
    return {"reachable": reachable.pk, "unreachable": unreachable.pk}


async def test_an_sms_reply_shows_its_badge_and_its_delivery(browser: Browser, demo: DemoSite, celery_worker):
    await in_thread(seed, agent_email=demo.agent_email)
    agent = await console_login(browser, demo)
    console = agent.page

    tab = console.locator(".cc-tab", has_text="Sam Sms")
    await expect(tab.locator(".cc-tab-channel")).to_have_text("SMS")
    await tab.click()
    pane = console.locator(".cc-chat:visible")
    await expect(pane.locator(".js-channel")).to_have_text("SMS")
    await expect(pane.locator(".cc-msg.is-visitor")).to_contain_text("Where is my parcel?")

    # The agent sees how the reply will be billed before sending it.
    await pane.locator(".js-text").fill("x" * 161)
    await expect(pane.locator(".js-count")).to_have_text("2 SMS segments · 161 GSM-7 characters")
    await pane.locator(".js-text").fill("It left our warehouse this morning.")
    await expect(pane.locator(".js-count")).to_have_text("1 SMS segment · 35 GSM-7 characters")
    await pane.locator(".js-send").click()
    await expect(pane.locator(".js-count")).to_be_hidden()
    sent = pane.locator(".cc-msg.is-agent", has_text="It left our warehouse")
    # Through the outbox, the worker and the sandbox, reported back live.
    await expect(sent.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    stored = await in_thread(lambda: list(SandboxMessage.objects.values_list("to_address", "body")))
    assert stored == [(CUSTOMER, "It left our warehouse this morning.")]

    # The customer's side: the sandbox outbox shows the SMS, and an answer typed there reaches the console live.
    phone = await agent.context.new_page()
    await phone.goto(f"{demo.url}/sandbox/")
    thread = phone.locator(".sb-thread", has_text=CUSTOMER)
    await expect(thread.locator(".sb-out")).to_contain_text("It left our warehouse this morning.")
    await thread.get_by_placeholder(f"Reply as {CUSTOMER}").fill("Great, thank you!")
    await thread.get_by_role("button", name="Reply").click()
    await expect(phone.locator(".alert-success")).to_contain_text(f"Sent in as {CUSTOMER}")
    await expect(pane.locator(".cc-msg.is-visitor", has_text="Great, thank you!")).to_be_visible()
    # Read on the phone: the agent sees it.
    await phone.locator(".sb-thread", has_text=CUSTOMER).get_by_role("button", name="Mark as read").click()
    await expect(sent.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Read$"))
    await phone.close()

    other = console.locator(".cc-tab", has_text="Nora Nonumber")
    await other.click()
    pane = console.locator(".cc-chat:visible")
    await pane.locator(".js-text").fill("Can you hear me?")
    await pane.locator(".js-send").click()
    failed = pane.locator(".cc-msg.is-agent", has_text="Can you hear me?")
    await expect(failed).to_have_class(re.compile("is-failed"))
    await expect(failed.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Not delivered$"))
    await expect(failed.locator(".cc-msg-reason")).to_have_text(re.compile("no phone number"))
    assert agent.errors == []
    await agent.context.close()


SEGMENT_CASES = [
    ("", 0, "GSM-7", 0),
    ("a" * 160, 1, "GSM-7", 160),
    ("a" * 161, 2, "GSM-7", 161),
    ("a" * 306, 2, "GSM-7", 306),
    ("a" * 307, 3, "GSM-7", 307),
    ("€" * 80, 1, "GSM-7", 160),  # an extended character counts twice
    ("€" * 81, 2, "GSM-7", 162),
    ("é" * 160, 1, "GSM-7", 160),  # é is in the GSM-7 alphabet
    ("ł" * 70, 1, "UCS-2", 70),  # one character outside it: the whole body is UCS-2
    ("ł" * 71, 2, "UCS-2", 71),
    ("a" * 66 + "🙂", 1, "UCS-2", 68),  # an emoji is two UTF-16 units
    ("a" * 69 + "🙂", 2, "UCS-2", 71),
]


async def test_sms_segments_are_counted_as_carriers_bill_them(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    for text, segments, encoding, units in SEGMENT_CASES:
        counted = await agent.page.evaluate(
            "(text) => import('/static/console/sms.js').then((sms) => sms.smsSegments(text))", text
        )
        assert counted == {"encoding": encoding, "units": units, "segments": segments}, text
    await agent.context.close()
