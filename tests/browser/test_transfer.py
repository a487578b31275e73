"""Transfer and invite as the seed describes them, in real Chromium with two agent consoles and a visitor
(protocol 1.14): Alice transfers the chat to Bob (her tab goes, the visitor is told, Bob gets a normal offer and
the history); Bob invites Alice back (both chat with the visitor, who sees who joined); Bob closes and the
visitor goes on with Alice."""

from __future__ import annotations

import dataclasses

import pytest
from playwright.async_api import Browser, Page, expect

from agents.models import AgentProfile
from chat.models import Conversation, ConversationStatus
from contactcenter.models import Role
from contactcenter.wiring.demo import DEMO_LOGINS
from queueing.models import Queue
from tests.browser.conftest import DemoSite, console_login, in_thread, set_presence
from tests.browser.test_queue_widget import _demo_queue, _start_chat

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

BOB = next(login for login in DEMO_LOGINS if login.role == Role.AGENT and login.first_name == "Bob")


def _patient_queue() -> None:
    """Offers wait for an answer as long as it takes (no agent is paused for a slow test machine)."""
    Queue.objects.filter(pk=_demo_queue().pk).update(answer_seconds=0)
    AgentProfile.objects.filter(user__email=BOB.email).update(max_chats=3)


def _conversation(name: str) -> dict:
    row = Conversation.objects.values("pk", "status", "assignee__email").get(tenant__slug="demo", contact__name=name)
    return row


async def _accept_offer(console: Page, name: str) -> None:
    offer = console.locator(".cc-offer", has_text=name)
    await expect(offer).to_be_visible()
    await offer.get_by_role("button", name="Accept").click()
    await expect(console.locator(".cc-tab", has_text=name)).to_be_visible()


async def test_transfer_then_invite_then_one_agent_leaves(browser: Browser, demo: DemoSite):
    await in_thread(_patient_queue)
    alice = await console_login(browser, demo)
    await set_presence(alice.page, "online")
    visitor, widget = await _start_chat(browser, demo, "Tess Transfer", "My invoice is wrong")
    await _accept_offer(alice.page, "Tess Transfer")
    bob = await console_login(
        browser, dataclasses.replace(demo, agent_email=BOB.email, agent_password=BOB.password, agent_name="Bob")
    )
    await set_presence(bob.page, "online")

    # Alice transfers to Bob: the menu lists him as free (and the offline admin with why not).
    pane = alice.page.locator(".cc-chat.is-active")
    await pane.get_by_role("button", name="Transfer…").click()
    menu = pane.locator(".js-team-menu")
    await expect(menu).to_contain_text("Transfer this chat to")
    await expect(menu.locator(".cc-switch-off", has_text="Ada Admin is offline.")).to_be_visible()
    await menu.get_by_role("button", name="Bob Agent · 0/3").click()
    await expect(alice.page.locator(".cc-tab", has_text="Tess Transfer")).to_have_count(0)
    await expect(widget.locator(".sb-event", has_text="transferred")).to_have_text(
        f"{demo.agent_name} transferred the chat to Bob."
    )
    await expect(widget.locator("#sb-subtitle")).to_have_text("Waiting for an agent…")

    # Bob gets a normal offer, which says who transferred it; accepting opens the chat with its history.
    card = bob.page.locator(".cc-offer", has_text="Tess Transfer")
    await expect(card.locator(".cc-offer-kicker")).to_have_text("Transferred chat")
    await expect(card.locator(".cc-offer-transfer")).to_have_text("Transferred by Alice Agent")
    await _accept_offer(bob.page, "Tess Transfer")
    bob_pane = bob.page.locator(".cc-chat.is-active")
    await expect(bob_pane.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["My invoice is wrong"])
    await expect(widget.locator("#sb-subtitle")).to_have_text("Chatting with Bob")
    tess = await in_thread(_conversation, name="Tess Transfer")
    assert (tess["status"], tess["assignee__email"]) == (ConversationStatus.OPEN, BOB.email)

    # Bob invites Alice: she joins at once, the visitor sees who joined, both write to the visitor.
    await bob_pane.get_by_role("button", name="Invite…").click()
    await bob_pane.locator(".js-team-menu").locator("button", has_text="Alice Agent · 0/").click()
    await expect(widget.locator(".sb-event", has_text="joined the chat").last).to_have_text(
        f"{demo.agent_name} joined the chat"
    )
    alice_tab = alice.page.locator(".cc-tab", has_text="Tess Transfer")
    await expect(alice_tab).to_be_visible()
    await alice_tab.click()
    alice_pane = alice.page.locator(".cc-chat.is-active")
    await expect(alice_pane.get_by_role("button", name="Transfer…")).to_be_hidden()  # Bob has the chat
    await alice_pane.locator(".js-text").fill("Alice here as well.")
    await alice_pane.locator(".js-text").press("Enter")
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("Alice here as well.")
    await expect(bob_pane.locator(".cc-msg .cc-bubble").last).to_have_text("Alice here as well.")

    # Bob closes: he leaves, the visitor is told and goes on with Alice.
    await bob_pane.locator(".js-disposition").select_option(index=1)
    await bob_pane.get_by_role("button", name="Close chat").click()
    await expect(bob.page.locator(".cc-tab", has_text="Tess Transfer")).to_have_count(0)
    await expect(widget.locator(".sb-event", has_text="left the chat")).to_have_text("Bob left the chat.")
    await expect(widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")
    await widget.locator("#sb-text").fill("Thanks, Alice")
    await widget.locator("#sb-text").press("Enter")
    await expect(alice_pane.locator(".cc-msg.is-visitor .cc-bubble").last).to_have_text("Thanks, Alice")
    await expect(alice_pane.get_by_role("button", name="Transfer…")).to_be_visible()  # hers now
    tess = await in_thread(_conversation, name="Tess Transfer")
    assert (tess["status"], tess["assignee__email"]) == (ConversationStatus.OPEN, demo.agent_email)

    for person in (alice, bob, visitor):
        assert person.errors == []
        await person.context.close()
