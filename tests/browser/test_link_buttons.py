"""Link requests from the console (protocol 1.20) in real Chromium, on the demo site as `make run` seeds it: the
assigned agent sends links to continue on WhatsApp, SMS and email; the widget shows one button per link (anchors to
wa.me, sms: and mailto:, opening a new tab) and the console a line with the same links. When the customer's first
WhatsApp message carrying the code arrives, the chat moves there and the widget keeps showing it live: the
customer's message and the agent's reply appear in it, the composer is gone and a notice says where it goes on,
also after the page is reloaded, until the chat goes on in another browser through an auth code."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from playwright.async_api import Browser, expect

from channels_switch.models import ChannelConnector
from channels_switch.services import inbound_receive
from channels_switch.services.auth_codes import auth_code_create
from chat.models import Conversation
from tests.browser.conftest import (
    DemoSite,
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

PHONE = "+447911123456"


def whatsapp_in(*, body: str) -> int:
    """The customer's WhatsApp message, as the provider's webhook hands it to the inbox (the service itself)."""
    connector = ChannelConnector.objects.get(tenant__slug="demo", kind="whatsapp")
    return inbound_receive(connector=connector, provider_id="SMlink1", sender=PHONE, body=body).conversation_id


def auth_code_for(*, conversation_id: int) -> str:
    conversation = Conversation.objects.get(pk=conversation_id)
    return auth_code_create(
        tenant_id=conversation.tenant_id, contact_id=conversation.contact_id, created_by="test"
    ).code


async def test_links_show_as_buttons_and_the_moved_chat_stays_live_in_the_widget(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await widget.get_by_label("Your name").fill("Lina Link")
    await widget.get_by_label("How can we help?").fill("Can we carry on from my phone?")
    await widget.get_by_role("button", name="Start chat").click()
    console = agent.page
    await console.locator(".cc-offer").get_by_role("button", name="Accept").click()
    pane = console.locator(".cc-chat.is-active")
    await expect(widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")

    # The agent picks the channels (every channel of the demo is on) and sends the links.
    send_link = pane.get_by_role("button", name="Send a link to continue on…")
    await expect(send_link).to_be_visible()
    await send_link.click()
    menu = pane.locator(".js-links-menu")
    await expect(menu.locator("label")).to_have_text(["WhatsApp", "SMS", "Email"])
    await menu.get_by_role("button", name="Send links").click()
    await expect(menu).to_be_hidden()

    # The visitor's side: one button per link, each an anchor to the app with the code, in a new tab.
    buttons = widget.locator(".sb-link-button")
    await expect(buttons).to_have_text(["Continue on WhatsApp", "Continue by SMS", "Continue by email"])
    hrefs = [await buttons.nth(i).get_attribute("href") for i in range(3)]
    assert hrefs[0] is not None and hrefs[0].startswith("https://wa.me/14155550111?text=")
    assert hrefs[1] is not None and hrefs[1].startswith("sms:+14155550100?&body=")
    assert hrefs[2] is not None and hrefs[2].startswith("mailto:")
    for i in range(3):
        assert await buttons.nth(i).get_attribute("target") == "_blank"
        assert await buttons.nth(i).get_attribute("rel") == "noopener"
    # The agent's side: a line saying which links went, with the links themselves.
    sent = pane.locator(".cc-links-sent")
    await expect(sent).to_have_text(
        re.compile(rf"^{demo.agent_name} sent links to continue on: WhatsApp · SMS · email · \d")
    )
    assert await sent.locator("a[data-channel=whatsapp]").get_attribute("href") == hrefs[0]

    # The customer sends the prefilled WhatsApp message: the chat moves there, with its history.
    match = re.search(r"SB-[A-Z2-9]{4}-[A-Z2-9]{4}", unquote(hrefs[0]))
    assert match is not None
    first = f"Hello, I'd like to continue my conversation here. My code is {match[0]}."
    moved_id = await in_thread(whatsapp_in, body=first)
    assert moved_id == await in_thread(lambda: Conversation.objects.get(contact__name="Lina Link").pk)
    await expect(pane.locator(".js-channel")).to_have_text("WhatsApp")
    await expect(send_link).to_be_hidden()

    # The widget goes on showing the chat live: the notice, no composer, the customer's message from WhatsApp.
    await expect(widget.locator("#sb-ended-text")).to_have_text(
        f"This conversation continues on WhatsApp ({PHONE}); new messages show here too."
    )
    await expect(widget.locator("#sb-composer")).to_be_hidden()
    await expect(widget.locator("#sb-restart")).to_be_hidden()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble").last).to_have_text(first)

    # The agent answers on WhatsApp; the reply shows in the widget too, over the same socket.
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble").last).to_have_text(first)
    await pane.locator(".js-text").fill("Great, we can go on here.")
    await pane.locator(".js-send").click()
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("Great, we can go on here.")
    await expect(widget.locator("#sb-ended-text")).to_contain_text("new messages show here too")

    # A reload of the page keeps it so: the same conversation live, its history, no start form.
    await visitor.page.reload()
    # The window was open: the loader opens it again (its state is kept per tab).
    await expect(visitor.page.locator("[data-switchboard-widget] button")).to_have_attribute("aria-expanded", "true")
    widget = await widget_frame(visitor.page)
    await expect(widget.locator("#sb-ended-text")).to_have_text(
        f"This conversation continues on WhatsApp ({PHONE}); new messages show here too."
    )
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("Great, we can go on here.")
    await expect(widget.locator("#sb-composer")).to_be_hidden()
    await expect(widget.get_by_role("button", name="Start chat")).to_be_hidden()
    await pane.locator(".js-text").fill("Your parcel left this morning.")
    await pane.locator(".js-send").click()
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("Your parcel left this morning.")

    # Back to the web in another browser (an auth code): this page says where the chat went and offers a new one.
    code = await in_thread(auth_code_for, conversation_id=moved_id)
    elsewhere = await new_person(browser)
    await elsewhere.page.goto(f"{demo.url}/chat/{demo.public_key}/#code={code}")
    other = await widget_frame(elsewhere.page)
    await expect(other.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("Your parcel left this morning.")
    await expect(other.locator("#sb-text")).to_be_visible()
    await expect(widget.locator("#sb-moved")).to_have_text(
        "Your conversation continues in another browser, where you signed in. You can start a new chat here."
    )
    await expect(widget.get_by_role("button", name="Start chat")).to_be_visible()
    assert visitor.errors == [] and agent.errors == [] and elsewhere.errors == []
