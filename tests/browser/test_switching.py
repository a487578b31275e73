"""Switching a live chat (seed 000) in real Chromium, on the demo site as `make run` seeds it: the widget offers
exactly the eligible channels, a switch to SMS ends the web session with the confirmation, the agent's badge
changes live, the introduction goes out through the relay (a real Celery worker, the sandbox provider), the
customer's answer from the sandbox outbox reaches the console (by SMS, and by email threaded on its reply address),
and the reopened widget says where the chat went.
The Channel Switching tab's diagnostics name the missing phone field. A visitor whose page closed is moved by
the system once the timeout has run out."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Frame, Locator, expect

from channels_switch.models import SandboxMessage
from channels_switch.services import widget_switching_save
from chat.models import Conversation, Widget
from chat.services import widget_save
from contactcenter.wiring.tasks import sweep_once
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
    pytest.mark.celery,
    pytest.mark.asyncio(loop_scope="session"),
]

PHONE = "+447911123456"
SHOWN = "+44 7911 123456"


@dataclass
class StartedChat:
    agent: Person
    visitor: Person
    widget: Frame
    pane: Locator


async def chat_started(browser: Browser, demo: DemoSite, *, answers: dict[str, str], message: str) -> StartedChat:
    """An agent online in the console, a visitor who answered the survey and started a chat, the agent in it."""
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    for label, value in answers.items():
        await widget.get_by_label(label).fill(value)
    await widget.get_by_label("How can we help?").fill(message)
    await widget.get_by_role("button", name="Start chat").click()
    await agent.page.locator(".cc-offer").get_by_role("button", name="Accept").click()
    return StartedChat(agent, visitor, widget, agent.page.locator(".cc-chat.is-active"))


async def test_a_visitor_moves_the_chat_to_sms_and_it_goes_on_there(browser: Browser, demo: DemoSite, celery_worker):
    started = await chat_started(
        browser, demo, answers={"Your name": "Sam Switch", "Phone": SHOWN}, message="Can you text me instead?"
    )
    agent, visitor, widget, pane = started.agent, started.visitor, started.widget, started.pane
    console, site = agent.page, visitor.page
    await expect(pane.locator(".js-channel")).to_have_text("Web chat")
    await pane.locator(".js-text").fill("Let me check that for you.")
    await pane.locator(".js-send").click()
    web_reply = pane.locator(".cc-msg.is-agent", has_text="Let me check that for you.")
    await expect(web_reply.locator(".cc-msg-meta")).to_have_text(re.compile(r"· (Sent|Seen)$"))

    # Exactly the eligible channels, in the widget's order: a phone number was given, no email.
    switch = widget.get_by_role("button", name="Continue elsewhere")
    await expect(switch).to_be_visible()
    await switch.click()
    options = widget.locator(".sb-switch-option")
    await expect(options).to_have_text([f"SMS{SHOWN}", f"WhatsApp{SHOWN}"])
    await options.filter(has_text="SMS").click()

    # The visitor's side: the confirmation, and the live session is over.
    confirmation = f"We'll continue this conversation by SMS at {SHOWN}."
    await expect(widget.locator(".sb-event", has_text="continue this conversation")).to_have_text(confirmation)
    await expect(widget.locator("#sb-ended-text")).to_contain_text(f"This conversation continues by SMS at {PHONE}")
    await expect(widget.locator("#sb-composer")).to_be_hidden()
    await expect(widget.locator("#sb-subtitle")).to_have_text("Continues by SMS")

    # The agent's side, live: the badge, the switch as a line of the history, the introduction and its delivery.
    await expect(pane.locator(".js-channel")).to_have_text("SMS")
    # A reply that went by the web chat keeps its web receipt: it never waits for the SMS provider.
    await expect(web_reply.locator(".cc-msg-meta")).to_have_text(re.compile(r"· (Sent|Seen)$"))
    await expect(pane.locator(".cc-event", has_text="moved the chat")).to_contain_text(
        f"Sam Switch moved the chat to SMS ({PHONE})"
    )
    introduction = pane.locator(".cc-msg", has_text="Introduction (sent automatically)")
    await expect(introduction.locator(".cc-bubble")).to_contain_text("Reply to this text to write to us.")
    await expect(introduction.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    sent = await in_thread(lambda: list(SandboxMessage.objects.values_list("to_address", flat=True)))
    assert sent == [PHONE]

    # Until the customer answers from that number, nothing more is sent to it: the agent is told why.
    await pane.locator(".js-text").fill("Are you there?")
    await pane.locator(".js-send").click()
    await expect(console.locator(".cc-toast, [role=alert]").filter(has_text="Waiting for the customer")).to_be_visible()

    # The customer answers the SMS in the sandbox outbox; it lands in the same conversation.
    phone = await agent.context.new_page()
    await phone.goto(f"{demo.url}/sandbox/")
    thread = phone.locator(".sb-thread", has_text=PHONE)
    await expect(thread.locator(".sb-out")).to_contain_text("Hello from Chat with Demo Company")
    await thread.get_by_placeholder(f"Reply as {PHONE}").fill("Yes, text me here please")
    await thread.get_by_role("button", name="Reply").click()
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble").last).to_have_text("Yes, text me here please")
    await pane.locator(".js-text").fill("Your order ships tomorrow.")
    await pane.locator(".js-send").click()
    reply = pane.locator(".cc-msg.is-agent", has_text="Your order ships tomorrow.")
    await expect(reply.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    assert await in_thread(lambda: Conversation.objects.count()) == 1

    # One direction: the reopened widget starts a new web chat and says where the earlier one went.
    await site.reload()
    widget = await widget_frame(site)
    await site.locator("[data-switchboard-widget] button").click()
    await expect(widget.locator("#sb-moved")).to_have_text(f"Your earlier conversation continues by SMS at {PHONE}.")
    await expect(widget.get_by_role("button", name="Start chat")).to_be_visible()
    assert visitor.errors == [] and agent.errors == []


def drop_phone_field() -> None:
    widget = Widget.objects.get(tenant__slug="demo")
    fields = [f for f in widget.survey_fields if f["kind"] != "phone"]
    widget_save(tenant=widget.tenant, instance=widget, survey_fields=fields)


async def test_the_channel_switching_tab_names_the_missing_phone_field(browser: Browser, demo: DemoSite):
    await in_thread(drop_phone_field)
    admin = await new_person(browser)
    page = admin.page
    await page.goto(f"{demo.url}/accounts/login/?next=/settings/widgets/")
    await page.get_by_label("Email").fill("admin@demo.test")
    await page.get_by_label("Password").fill("demo-admin-pass")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("link", name="Website", exact=True).first.click()
    await page.get_by_role("link", name="Channel Switching").click()
    diagnostics = page.locator("#switch-diagnostics")
    await expect(diagnostics.locator('[data-channel="sms"]')).to_contain_text("The pre-chat survey has no phone field")
    await expect(diagnostics.locator('[data-channel="email"]')).to_contain_text("Offered")

    # Turning SMS off for this widget is saved and read back at once.
    await page.get_by_label("Offer SMS").uncheck()
    await page.get_by_role("button", name="Save channel switching").click()
    await expect(page.locator(".alert-success")).to_contain_text("Channel switching")
    await expect(diagnostics.locator('[data-channel="sms"]')).to_contain_text("SMS is not picked as a switch channel.")
    assert admin.errors == []


def dead_connection_on() -> None:
    widget = Widget.objects.get(tenant__slug="demo")
    widget_switching_save(
        tenant=widget.tenant,
        widget=widget,
        show_button=True,
        channels=["email", "sms", "whatsapp"],
        dead_connection=True,
        dead_connection_seconds=30,
    )


def deadline_of(conversation_id: int) -> datetime | None:
    return Conversation.objects.get(pk=conversation_id).visitor_away_deadline


async def test_a_visitor_whose_page_closed_is_moved_by_the_system(browser: Browser, demo: DemoSite, celery_worker):
    await in_thread(dead_connection_on)
    started = await chat_started(
        browser, demo, answers={"Your name": "Lee Leaving", "Email": "lee@example.org"}, message="Is my refund through?"
    )
    agent, visitor, widget, pane = started.agent, started.visitor, started.widget, started.pane
    await expect(widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")
    conversation_id = await in_thread(lambda: Conversation.objects.get(contact__name="Lee Leaving").pk)
    while_open = await in_thread(deadline_of, conversation_id=conversation_id)
    assert while_open is not None  # the open socket holds a lease

    # The visitor closes the tab; then the agent answers, and nobody reads it.
    closed_at = datetime.now(UTC)
    await visitor.context.close()
    await pane.locator(".js-text").fill("Yes, it went through this morning.")
    await pane.locator(".js-send").click()
    await expect(pane.locator(".cc-msg.is-agent", has_text="went through")).to_be_visible()

    # Once the timeout has run out from the close, the sweep moves the chat: email first in this widget's order.
    deadline = await in_thread(deadline_of, conversation_id=conversation_id)
    # Renewed at the close, by the open chat's own timeout (30 s; no longer the queue's grace it waited with).
    assert deadline is not None
    assert closed_at + timedelta(seconds=29) <= deadline <= datetime.now(UTC) + timedelta(seconds=30)
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    await in_thread(sweep_once)
    await expect(pane.locator(".js-channel")).to_have_text("Email")
    await expect(pane.locator(".cc-event", has_text="Connection lost")).to_contain_text(
        "the chat moved to email (lee@example.org) by itself"
    )
    introduction = pane.locator(".cc-msg", has_text="Introduction (sent automatically)")
    await expect(introduction.locator(".cc-bubble")).to_contain_text("Yes, it went through this morning.")
    await expect(introduction.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    mail = await in_thread(lambda: list(SandboxMessage.objects.values_list("to_address", "subject")))
    assert mail == [("lee@example.org", "Your conversation with Demo Company")]
    assert agent.errors == []


async def test_an_agent_moves_the_chat_to_email_and_it_goes_on_by_mail(browser: Browser, demo: DemoSite, celery_worker):
    started = await chat_started(
        browser,
        demo,
        answers={"Your name": "Mia Mail", "Email": "mia@example.org"},
        message="Please email me the invoice.",
    )
    agent, visitor, widget, pane = started.agent, started.visitor, started.widget, started.pane

    move = pane.get_by_role("button", name="Move to…")
    await move.click()
    menu = pane.locator(".js-switch-menu")
    await expect(menu.locator(".cc-switch-off[data-channel=sms]")).to_contain_text("no valid phone number")
    await menu.get_by_role("button", name="Email · mia@example.org").click()

    await expect(pane.locator(".js-channel")).to_have_text("Email")
    await expect(move).to_be_hidden()  # one way: a moved chat never comes back to the web
    await expect(pane.locator(".cc-event", has_text="moved the chat")).to_contain_text(
        f"{demo.agent_name} moved the chat to email (mia@example.org)"
    )
    await expect(widget.locator("#sb-ended-text")).to_contain_text(
        "This conversation continues by email at mia@example.org"
    )

    # The customer answers the mail in the sandbox outbox as a mail client does (to its Reply-To, quoting it):
    # the console shows the answer without the quote, and the agent's next mail goes out.
    introduction = pane.locator(".cc-msg", has_text="Introduction (sent automatically)")
    await expect(introduction.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    mailbox = await agent.context.new_page()
    await mailbox.goto(f"{demo.url}/sandbox/")
    thread = mailbox.locator(".sb-thread", has_text="mia@example.org")
    await expect(thread.locator(".sb-headers")).to_contain_text("Reply-To")
    await thread.get_by_placeholder("Reply as mia@example.org").fill("Invoice 1042, please.")
    await thread.get_by_role("button", name="Reply").click()
    answer = pane.locator(".cc-msg.is-visitor").last
    await expect(answer.locator(".cc-bubble").first).to_have_text("Invoice 1042, please.")
    await expect(answer).not_to_contain_text("wrote:")
    await expect(answer).to_contain_text("original-email.txt")  # the whole mail, quote and all, beside it
    await pane.locator(".js-text").fill("Here it is: invoice 1042.")
    await pane.locator(".js-send").click()
    reply = pane.locator(".cc-msg.is-agent", has_text="Here it is: invoice 1042.")
    await expect(reply.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    assert agent.errors == [] and visitor.errors == []
