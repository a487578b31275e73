"""Identity verification in a browser (docs/identity-verification.md): the customer's page passes a user id signed
by its backend on the loader's script tag; the user starts a chat on the laptop and finds the same live chat, with
their earlier conversation above it, on the phone; a page with a forged signature gets the error event and an
anonymous visitor; signing out of the site makes the widget a new anonymous visitor."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from playwright.async_api import Browser, Page, expect

from chat.models import Channel, Conversation, ConversationStatus, Widget
from chat.services.identity import widget_identity_secret_rotate
from contactcenter.models import Contact, ContactIdentity, IdentityKind
from tests.browser.conftest import (
    DemoSite,
    console_login,
    customer_page,
    in_thread,
    new_person,
    set_presence,
    widget_frame,
)
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]


def seed(public_key: str) -> str:
    """The widget's identity secret, and Jane (user 1182 of the shop) with an earlier conversation by SMS."""
    widget = Widget.objects.get(public_key=public_key)
    secret = widget_identity_secret_rotate(widget=widget)
    contact = Contact.objects.create(tenant=widget.tenant, name="Jane Doe")
    ContactIdentity.objects.create(
        tenant=widget.tenant, contact=contact, kind=IdentityKind.EXTERNAL, value="1182", verified=True
    )
    earlier = Conversation.objects.create(
        tenant=widget.tenant,
        contact=contact,
        channel=Channel.SMS,
        channel_address="+14155550123",
        status=ConversationStatus.CLOSED,
    )
    MessageFactory(tenant=widget.tenant, conversation=earlier, body="Did my refund go through?")
    return secret


async def shop_page(page: Page, demo: DemoSite, *, user: str, signature: str) -> None:
    attributes = f'data-user-id="{user}" data-user-name="Jane Doe" data-user-signature="{signature}"'
    await customer_page(page, demo, attributes=attributes)
    await page.wait_for_function("() => window.Switchboard && window.Switchboard.ready")


async def test_a_signed_in_user_chats_as_themselves_on_every_device(browser: Browser, demo: DemoSite):
    secret = await in_thread(seed, public_key=demo.public_key)
    signature = hmac.new(secret.encode(), b"1182", hashlib.sha256).hexdigest()
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")  # someone is online: the widget offers a live chat

    laptop = await new_person(browser)
    await shop_page(laptop.page, demo, user="1182", signature=signature)
    result = await laptop.page.evaluate("Switchboard.ready")
    assert result == {"signedIn": True, "conversationId": None}
    launcher = laptop.page.locator("[data-switchboard-widget] button")
    await launcher.click()
    frame = await widget_frame(laptop.page)
    await expect(frame.locator("#sb-history").get_by_text("Did my refund go through?")).to_be_visible()
    await expect(frame.locator("#sb-history").get_by_text("Earlier conversation by SMS", exact=False)).to_be_visible()
    await frame.get_by_label("Your name").fill("Jane Doe")
    await frame.get_by_label("How can we help?").fill("Hello from my laptop")
    await frame.locator("#sb-submit").click()
    await expect(frame.locator("#sb-log").get_by_text("Hello from my laptop")).to_be_visible()

    phone = await new_person(browser)
    await shop_page(phone.page, demo, user="1182", signature=signature)
    joined = await phone.page.evaluate("Switchboard.ready")
    assert joined["signedIn"] is True and joined["conversationId"], joined
    phone_launcher = phone.page.locator("[data-switchboard-widget] button")
    await expect(phone_launcher).to_be_visible()  # a chat in progress always shows its launcher
    await phone_launcher.click()
    phone_frame = await widget_frame(phone.page)
    await expect(phone_frame.locator("#sb-log").get_by_text("Hello from my laptop")).to_be_visible()
    await phone_frame.locator("#sb-text").fill("And now from my phone")
    await phone_frame.locator("#sb-send").click()
    await expect(frame.locator("#sb-log").get_by_text("And now from my phone")).to_be_visible()

    forger = await new_person(browser)
    await shop_page(forger.page, demo, user="1182", signature="0" * 64)
    refused = await forger.page.evaluate("Switchboard.ready")
    assert refused["signedIn"] is False and refused["error"]["code"] == "identity_invalid", refused
    assert await forger.page.evaluate("window.sbErrors") == ["identity_invalid"]
    forger_launcher = forger.page.locator("[data-switchboard-widget] button")
    await expect(forger_launcher).to_be_visible()  # an anonymous visitor, not an uninitialised widget
    await forger_launcher.click()
    forger_frame = await widget_frame(forger.page)
    await expect(forger_frame.locator("#sb-submit")).to_be_visible()
    await expect(forger_frame.locator("#sb-history")).to_be_hidden()
    await expect(forger_frame.get_by_text("Hello from my laptop")).to_have_count(0)

    await phone.page.evaluate("Switchboard.logout()")  # Jane signs out of the shop on her phone
    await expect(phone_frame.locator("#sb-submit")).to_be_visible()
    await expect(phone_frame.locator("#sb-history")).to_be_hidden()
    await expect(phone_frame.get_by_text("And now from my phone")).to_have_count(0)
    await phone.page.reload()
    await phone.page.wait_for_function("() => window.Switchboard && window.Switchboard.ready")
    assert (await phone.page.evaluate("Switchboard.ready"))["signedIn"] is True  # the page signs her in again

    assert not laptop.errors and not phone.errors and not forger.errors and not agent.errors
    for person in (agent, laptop, phone, forger):
        await person.context.close()
